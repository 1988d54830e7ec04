"""Chapter 3, problem representation: Reframing (5); Multilabel, Ensembles, Cascade,
Neutral Class and Rebalancing (6-10) come with the rest of issue 3."""

from mlpatterns.problem.reframing import ReframedRegressor

__all__ = ["ReframedRegressor"]
