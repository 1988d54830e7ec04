"""Chapter 2, data representation: Hashed Feature (1), Embeddings (2), Feature Cross (3),
Multimodal Input (4).

The torch parts (``CategoricalEmbeddings``, ``EmbeddingTable``, the multimodal network)
live in :mod:`mlpatterns.data.embeddings` and :mod:`mlpatterns.data.multimodal_input`
and are imported from there, so that ``import mlpatterns.data`` does not import torch.
"""

from mlpatterns.data.bucketize import Bucketizer, bucketize, quantile_boundaries
from mlpatterns.data.feature_cross import FeatureCross, cross_values
from mlpatterns.data.hashed_feature import HashedFeature

__all__ = [
    "Bucketizer",
    "FeatureCross",
    "HashedFeature",
    "bucketize",
    "cross_values",
    "quantile_boundaries",
]
