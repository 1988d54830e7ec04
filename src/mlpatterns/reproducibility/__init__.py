"""Chapter 6, reproducibility: Transform (21), Repeatable Splitting (22, by key hash or in
time order), Workflow Pipeline (25: the engine in :mod:`.workflow_pipeline`, the data's
statistics and validation in :mod:`.data_statistics` and :mod:`.data_validation`) and
Model Versioning (27: the registry in :mod:`.model_versioning`), Bridged Schema (23:
:mod:`.bridged_schema`), Windowed Inference (24: :mod:`.windowed_inference`) and the
Feature Store (26: its definitions and offline store in :mod:`.feature_store`).

Importing this package imports none of its modules (so neither pandas nor scikit-learn);
each name loads its module on first use.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {  # name -> the module (relative to this package) that defines it
    "DEFAULT_FRACTIONS": "repeatable_splitting",
    "HashKFold": "repeatable_splitting",
    "hash_split": "repeatable_splitting",
    "hash_split_frames": "repeatable_splitting",
    "key_buckets": "repeatable_splitting",
    "row_key_buckets": "split_keys",  # the same buckets from rows of plain values, without pandas
    "repeatable_sample": "repeatable_splitting",
    "split_sql_condition": "repeatable_splitting",
    "TIME_SPLITS": "time_splitting",
    "time_cutoffs": "time_splitting",
    "time_split": "time_splitting",
    "time_split_sql_condition": "time_splitting",
    "DATE_PARTS": "transform",
    "FeatureTransform": "transform",
    "TransformedFeatures": "transform",
    "Pipeline": "workflow_pipeline",
    "Step": "workflow_pipeline",
    "Store": "workflow_pipeline",
    "DataStatistics": "data_statistics",
    "ModelURI": "model_versioning",
    "open_registry": "model_versioning",
    "SchemaBridge": "bridged_schema",
    "choose_bridged_count": "bridged_schema",
    "WindowFeature": "windowed_inference",
    "window_features": "windowed_inference",
    "window_features_sql": "windowed_inference",
    "StreamWindows": "windowed_inference",
    "LateEventError": "windowed_inference",
    "sliding_window_features": "windowed_inference",
    "StreamSlidingWindows": "windowed_inference",
    "Entity": "feature_store.definitions",
    "FeatureView": "feature_store.definitions",
    "get_historical_features": "feature_store.offline_store",
    "FeatureRepository": "feature_store.repository",
    "load_repository": "feature_store.repository",
    "FeatureService": "feature_store.feature_service",
    "get_online_features": "feature_store.feature_service",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
