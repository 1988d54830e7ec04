"""Chapter 6, reproducibility: Transform (21), Repeatable Splitting (22), and later
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
from mlpatterns.reproducibility.transform import DATE_PARTS, FeatureTransform, TransformedFeatures

__all__ = [
    "DATE_PARTS",
    "DEFAULT_FRACTIONS",
    "FeatureTransform",
    "HashKFold",
    "TransformedFeatures",
    "hash_split",
    "hash_split_frames",
    "key_buckets",
    "repeatable_sample",
    "split_sql_condition",
]
