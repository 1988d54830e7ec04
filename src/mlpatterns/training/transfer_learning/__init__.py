"""Transfer Learning (pattern 13): reuse a model trained on a large related task.

* ``layers``: :func:`freeze`, :func:`layerwise_lr_groups`, :func:`bottleneck_features` and
  more, for any ``torch.nn.Module``.
* ``sentence_embedder``: :class:`SentenceEmbedder`, the frozen all-MiniLM-L6-v2 encoder as a
  scikit-learn transformer; ``fine_tuning``: :class:`FineTunedTextClassifier`.
* ``text_encoder``: :class:`TextEncoder`, the frozen encoder as ONNX with its tokenizer,
  which a spec's ``features: text:`` runs in training and a bundle in serving.
* ``networks``: :class:`SmallCNN`, :class:`SentenceClassifier` (torch modules).

Importing this package imports none of its modules; each name loads its module on first use.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {  # name -> the module that defines it
    "bottleneck_features": "layers",
    "freeze": "layers",
    "layerwise_lr_groups": "layers",
    "train_classifier": "layers",
    "train_mode": "layers",
    "unfreeze": "layers",
    "PACKAGED_MODEL": "sentence_embedder",
    "SentenceEmbedder": "sentence_embedder",
    "load_sentence_encoder": "sentence_embedder",
    "FineTunedTextClassifier": "fine_tuning",
    "ENCODERS": "text_encoder",
    "PACKAGED_ENCODER": "text_encoder",
    "TextEncoder": "text_encoder",
    "TextEncoderError": "text_encoder",
    "attach_bundle_encoders": "text_encoder",
    "cache_directory": "text_encoder",
    "cached_encoder_onnx": "text_encoder",
    "export_encoder": "text_encoder",
    "SentenceClassifier": "networks",
    "SmallCNN": "networks",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
