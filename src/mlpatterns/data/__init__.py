"""Chapter 2, data representation: Hashed Feature (1), Embeddings (2), Feature Cross (3),
Multimodal Input (4).

Importing this package does not import torch. The torch modules are imported from
their own modules, or lazily from here: ``CategoricalEmbeddings``
(:mod:`mlpatterns.data.embeddings`) and ``MultimodalNetwork``
(:mod:`mlpatterns.data.multimodal_network`).
"""

from __future__ import annotations

from typing import Any

from mlpatterns.data.bucketize import Bucketizer, bucketize, quantile_boundaries
from mlpatterns.data.embedding_encoder import EmbeddingEncoder, embedding_dim
from mlpatterns.data.embedding_table import EmbeddingTable
from mlpatterns.data.feature_cross import FeatureCross, cross_values
from mlpatterns.data.hashed_feature import HashedFeature, collision_report
from mlpatterns.data.multimodal_estimators import MultimodalClassifier, MultimodalRegressor
from mlpatterns.data.multimodal_input import MultimodalFeatures

__all__ = [
    "Bucketizer",
    "CategoricalEmbeddings",
    "EmbeddingEncoder",
    "EmbeddingTable",
    "FeatureCross",
    "HashedFeature",
    "MultimodalClassifier",
    "MultimodalFeatures",
    "MultimodalNetwork",
    "MultimodalRegressor",
    "bucketize",
    "cross_values",
    "collision_report",
    "embedding_dim",
    "quantile_boundaries",
]

_LAZY = {
    "CategoricalEmbeddings": "mlpatterns.data.embeddings",
    "MultimodalNetwork": "mlpatterns.data.multimodal_network",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlpatterns.data' has no attribute {name!r}")
