"""The declarative project: one YAML file that names data, split, features, target and models.

``mlpatterns run SPEC.yaml`` reads it with :func:`load_spec`. Every mistake is
reported with the path of the field (``features.categorical.tailnum``) and what
was expected; column names are checked against the data once it is loaded
(:meth:`Spec.check_columns`). See ``examples/flights.yaml`` for a full spec.

This package is the orchestration layer's view of a spec: the schema and its checks
(:mod:`~mlpatterns.spec.schema`, :mod:`~mlpatterns.spec.params`), the data a spec
names (:mod:`~mlpatterns.spec.data`) and the adapters that turn a model section into a
trained, exported model (:mod:`~mlpatterns.spec.models`, :mod:`~mlpatterns.spec.network`,
:mod:`~mlpatterns.spec.emulator`, :mod:`~mlpatterns.spec.tuning`). The pattern components
never import it. Loading a spec imports neither pandas nor torch nor ONNX; scikit-learn
only to check the parameters of a scikit-learn model (:mod:`~mlpatterns.spec.params`).
"""

from mlpatterns.spec._checks import SpecError, check_plain_name
from mlpatterns.spec.schema import (
    CATEGORICAL_ENCODINGS,
    COMPARISONS,
    DATASETS,
    DATE_PARTS,
    MEMBER_TYPES,
    MODEL_TYPES,
    NETWORK_REBALANCE_METHODS,
    REBALANCE_METHODS,
    TASKS,
    TEXT_ENCODERS,
    Spec,
    check_spec_params,
    load_spec,
    parse_distribution,
    parse_spec,
)

__all__ = [
    "CATEGORICAL_ENCODINGS",
    "COMPARISONS",
    "DATASETS",
    "DATE_PARTS",
    "MEMBER_TYPES",
    "MODEL_TYPES",
    "NETWORK_REBALANCE_METHODS",
    "REBALANCE_METHODS",
    "TASKS",
    "TEXT_ENCODERS",
    "Spec",
    "SpecError",
    "check_plain_name",
    "check_spec_params",
    "load_spec",
    "parse_distribution",
    "parse_spec",
]
