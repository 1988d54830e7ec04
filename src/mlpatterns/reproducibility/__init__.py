"""Chapter 6, reproducibility: Transform (21), Repeatable Splitting (22, by key hash or in
time order), and later
Bridged Schema, Windowed Inference, Workflow Pipeline, Feature Store, Model Versioning."""

from mlpatterns.reproducibility.repeatable_splitting import (
    DEFAULT_FRACTIONS,
    HashKFold,
    hash_split,
    hash_split_frames,
    key_buckets,
    repeatable_sample,
    split_sql_condition,
)
from mlpatterns.reproducibility.time_split import (
    TIME_SPLITS,
    time_cutoffs,
    time_split,
    time_split_sql_condition,
)
from mlpatterns.reproducibility.transform import DATE_PARTS, FeatureTransform, TransformedFeatures

__all__ = [
    "DATE_PARTS",
    "DEFAULT_FRACTIONS",
    "FeatureTransform",
    "HashKFold",
    "TIME_SPLITS",
    "TransformedFeatures",
    "hash_split",
    "hash_split_frames",
    "key_buckets",
    "repeatable_sample",
    "split_sql_condition",
    "time_cutoffs",
    "time_split",
    "time_split_sql_condition",
]
