"""Chapter 7, responsible AI: Heuristic Benchmark (28), Explainable Predictions (29), Fairness Lens (30)."""

from mlpatterns.responsible.heuristic_benchmark import HeuristicBenchmark

__all__ = ["HeuristicBenchmark"]
