"""Continued Model Evaluation (pattern 18): log what a deployed model predicts, join the ground
truth that arrives later, and evaluate the model on it over time, so that a model that has gone
stale is noticed and retrained.

The parts, each usable alone:

- the prediction log (:mod:`.prediction_log`: Parquet files by default, SQLite in WAL mode,
  PostgreSQL; one conformance suite in :mod:`mlpatterns.testing.prediction_log_conformance`)
  and :class:`PredictionLogger`, which batches writes off a server's request path;
- :func:`add_ground_truth`: labels that arrive later, joined by key, idempotently;
- :func:`evaluate_windows`: metrics per model version and time window, with counts and
  confidence intervals, computed by DuckDB over the log;
- :func:`drift_windows` and :func:`explain_drift`: feature and prediction drift per window against
  the training statistics every bundle carries;
- :func:`estimate_retraining_interval`: how often to retrain, from how fast the metric decays;
- :mod:`.alerts` (thresholds, webhook) and :mod:`.monitor_plots` (what a person looks at).

``mlpatterns monitor`` and the spec's ``monitoring:`` section drive them
(docs/patterns/continued_model_evaluation.md). Names load on first use: importing this package
imports neither pandas nor DuckDB.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {
    "LABEL_COLUMNS": "prediction_log", "PREDICTION_COLUMNS": "prediction_log", "CompactionResult": "prediction_log",
    "LabelCounts": "prediction_log",
    "PredictionLog": "prediction_log", "PredictionLogError": "prediction_log", "arrow_schema": "prediction_log",
    "label_text": "prediction_log", "open_prediction_log": "prediction_log",
    "PredictionLogger": "prediction_logger",
    "GroundTruthError": "ground_truth", "LabelIngestion": "ground_truth", "add_ground_truth": "ground_truth",
    "read_ground_truth": "ground_truth",
    "WINDOW_METRICS": "evaluation_windows", "evaluate_windows": "evaluation_windows",
    "metric_direction": "evaluation_windows", "parse_window": "evaluation_windows",
    "drift_windows": "drift", "explain_drift": "drift", "window_statistics": "drift",
    "prediction_statistics": "reference_statistics", "training_statistics": "reference_statistics",
    "RetrainingInterval": "retraining_interval", "estimate_retraining_interval": "retraining_interval",
    "Alert": "alerts", "DRIFT_LIMITS": "alerts", "check_alerts": "alerts", "send_webhook": "alerts",
    "plot_drift_heatmap": "monitor_plots", "plot_metric_over_time": "monitor_plots",
    "plot_prediction_distribution": "monitor_plots", "plot_retraining_interval": "monitor_plots",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
