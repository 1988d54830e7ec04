"""Stateless Serving Function (16): a loaded bundle as one function from raw rows to predictions.

Problem: a trained model is tied to the language, framework and preprocessing
code that trained it, and clients should not need to know any of that.

Solution: :class:`ServingFunction` loads a verified bundle (see
:mod:`mlpatterns.bundles`): the fitted transform (21) from JSON and the model
from ONNX, run by ONNX Runtime. It holds no state between calls, takes raw input
columns as a DataFrame, checks them against the bundle's signature, applies exactly
the training-time transform and returns the predictions with the key columns
passed through unchanged (Keyed Predictions, 20).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.bundles.format import Bundle, BundleError, read_bundle
from mlpatterns.input_types import conform_column
from mlpatterns.reproducibility.transform import FeatureTransform, TransformedFeatures
from mlpatterns.serving.model_graph import GraphError, ModelGraph
from mlpatterns.serving.serving_contract import (
    TASKS,
    InputError,
    RowProblem,
    checked_signature,
    is_finite_number,
    model_graph,
    read_outputs,
)

__all__ = ["InputError", "RowProblem", "ServingFunction", "good_rows"]


class ServingFunction:
    """Raw rows in, keyed predictions out, through a verified bundle.

    Examples
    --------
    ``serving = ServingFunction.load("runs/flights/bundles/gbm")`` then
    ``serving.predict(frame)`` returns a DataFrame with the key columns and
    ``probability``/``prediction`` (classification) or ``prediction`` (regression).
    """

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        manifest = bundle.manifest
        self.name: str = str(manifest["name"])
        self.task: str = manifest["task"]
        if self.task not in TASKS:
            raise BundleError(f"{bundle.path}: task must be one of {list(TASKS)}, got {self.task!r}")
        self.signature: dict[str, Any] = checked_signature(bundle.path, manifest["signature"])
        threshold = manifest.get("threshold", 0.5)
        if not is_finite_number(threshold):
            raise BundleError(f"{bundle.path}: threshold must be a number, got {threshold!r}")
        self.threshold: float = float(threshold)
        try:
            self.transform = FeatureTransform.from_dict(bundle.json(manifest["transform"]))
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise BundleError(f"{bundle.path}: the transform cannot be rebuilt ({type(error).__name__}: {error})") from error
        if self.transform.text:  # Transfer Learning (13): the frozen text encoder is two of the bundle's files
            from mlpatterns.training.transfer_learning.text_encoder import (
                TextEncoderError,
                attach_bundle_encoders,
            )

            try:
                attach_bundle_encoders(self.transform, bundle.files)
            except TextEncoderError as error:
                raise BundleError(f"{bundle.path}: {error}") from error
        if self.input_columns != self.transform.input_columns:
            raise BundleError(
                f"{bundle.path}: the signature's inputs {self.input_columns} do not match the "
                f"transform's {self.transform.input_columns}"
            )
        self._read_outputs(bundle.path, manifest)
        try:
            self._graph = ModelGraph(model_graph(manifest["model"]), bundle.files)
        except GraphError as error:
            raise BundleError(f"{bundle.path}: model.{error}") from error

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, public_key: str | os.PathLike[str] | bytes | None = None,
    ) -> ServingFunction:
        """Read, verify and load a bundle directory (its signature checked with ``public_key`` if given)."""
        # without a key, the call that every version of read_bundle accepts
        return cls(read_bundle(path) if public_key is None else read_bundle(path, public_key=public_key))

    @property
    def input_columns(self) -> list[str]:
        return [item["name"] for item in self.signature["inputs"]]

    @property
    def null_values(self) -> list[str] | None:
        """The texts of a CSV that mean "no value", as the training data was read (None: the default)."""
        return self.signature.get("null_values")

    @property
    def key_columns(self) -> list[str]:
        return list(self.signature.get("keys", []))

    @property
    def output_columns(self) -> list[str]:
        return [item["name"] for item in self.signature["outputs"]]

    # -- input checks ----------------------------------------------------------------------------
    def conform(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowProblem]]:
        """The input columns converted to the types the model was trained on, and the bad rows.

        Each input becomes its trained type whatever the frame holds (CSV text, a Parquet
        float column because of a null, Python objects), value by value, so that a row's
        features never depend on the other rows it arrives with
        (:func:`mlpatterns.tables.conform_column`): a boolean input accepts booleans,
        ``true``/``false`` in any case, ``1``/``0`` (as numbers or text) and the texts the
        training file used (``true_values``/``false_values`` in the signature, e.g.
        ``Yes``/``No``, in any case); an integer input accepts whole numbers; another
        numeric input numbers and numeric text; a date input dates, timestamps and ISO
        8601 text; a text input anything, as text. Anything else is a
        :class:`RowProblem`, never a silent null. A null key is a problem too; the
        predictions carry the keys as given (:meth:`predict_conformed`). Missing columns
        raise :class:`InputError`, even when the frame has no rows.
        """
        missing = [c for c in [*self.input_columns, *self.key_columns] if c not in frame.columns]
        if missing:
            raise InputError(
                f"missing column(s) {missing}; the model '{self.name}' expects inputs "
                f"{self.input_columns} and keys {self.key_columns}"
            )
        raw, frame = frame, frame.copy()
        problems: list[RowProblem] = []
        positions = np.arange(len(frame))
        for item in self.signature["inputs"]:
            name = item["name"]
            column = frame[name]
            converted, bad, expected = conform_column(column, item)
            frame[name] = converted
            problems += [RowProblem(int(r), name, f"expected {expected}, got {column.iloc[r]!r}")
                         for r in positions[bad]]
        problems += [RowProblem(*problem) for problem in self.transform.row_problems(frame)]
        for key in self.key_columns:
            bad = raw[key].isna().to_numpy()
            problems += [RowProblem(int(r), key, "key is null; every row needs its key") for r in positions[bad]]
        unique = {(p.row, p.column): p for p in problems}
        return frame, sorted(unique.values(), key=lambda p: (p.row, p.column))

    def check_input(self, frame: pd.DataFrame) -> list[RowProblem]:
        """The problems of each bad row; raise :class:`InputError` for missing columns."""
        return self.conform(frame)[1]

    # -- prediction ------------------------------------------------------------------------------
    def features(self, frame: pd.DataFrame) -> TransformedFeatures:
        """The model inputs the bundle computes from raw rows (used by the skew test)."""
        return self.transform.transform(frame)

    def _read_outputs(self, path: Any, manifest: dict[str, Any]) -> None:
        """What the task's outputs are named after: classes (multiclass) or labels (multilabel)."""
        self.classes, self.labels, thresholds = read_outputs(path, manifest, self.task)
        self.thresholds: np.ndarray = np.asarray(thresholds, dtype=np.float64)

    def model_output(self, features: TransformedFeatures) -> np.ndarray:
        """The model graph's raw output matrix (probabilities, values or bucket probabilities)."""
        return self._graph.run(features.matrix(), numeric_columns=features.numeric.shape[1])

    def predict_features(self, features: TransformedFeatures) -> np.ndarray:
        """Model output for transformed features.

        P(positive) for classification and the value for regression (the mean of the
        predictive distribution of a reframed model), one entry per row; the class
        probabilities (multiclass) or label probabilities (multilabel), one column each.
        """
        output = self.model_output(features)
        names = self.classes or self.labels
        if names and output.shape[1] != len(names):
            raise BundleError(f"{self.bundle.path}: the model gives {output.shape[1]} columns for the "
                              f"{len(names)} {'classes' if self.classes else 'labels'} {names}")
        if self.task == "classification":  # [P(negative), P(positive)] or a network's [P(positive)]
            return output[:, -1]
        if self.task == "regression":
            if self.bundle.manifest["model"].get("output") == "bucket_probabilities":  # Reframing (5)
                return output @ np.asarray(self.bundle.manifest["model"]["centers"])
            return output[:, 0]
        return output

    def predict_quantiles(self, features: TransformedFeatures, quantiles: list[float]) -> np.ndarray:
        """Quantiles of a reframed model's predictive distribution (Reframing, 5)."""
        from mlpatterns.problem.reframing import quantiles_from_bucket_proba

        model = self.bundle.manifest["model"]
        if model.get("output") != "bucket_probabilities":
            raise ValueError(f"the model '{self.name}' predicts a value, not a distribution")
        return quantiles_from_bucket_proba(self.model_output(features), model["edges"], model["bucket_ids"], quantiles)

    def predict(self, frame: pd.DataFrame, *, bad_rows: str = "raise") -> pd.DataFrame:
        """Predict every row; keys pass through unchanged, in the input order.

        ``bad_rows="raise"`` (default) raises :class:`InputError` listing every bad
        row; ``"skip"`` predicts the good rows only (:meth:`predict_good_rows` also
        returns the problems of the others).
        """
        if bad_rows not in ("raise", "skip"):
            raise ValueError(f"bad_rows must be 'raise' or 'skip', got {bad_rows!r}")
        result, problems = self.predict_good_rows(frame)
        if problems and bad_rows == "raise":
            raise InputError(f"{len({p.row for p in problems})} bad row(s)", problems)
        return result

    def predict_good_rows(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowProblem]]:
        """Predictions for the rows that pass :meth:`check_input`, and the problems of the rest."""
        conformed, problems = self.conform(frame)
        good = good_rows(len(frame), problems)
        return self.predict_conformed(frame.iloc[good], conformed.iloc[good]), problems

    def predict_conformed(
        self, raw: pd.DataFrame, conformed: pd.DataFrame, *, features: TransformedFeatures | None = None,
    ) -> pd.DataFrame:
        """Predictions for good rows already through :meth:`conform`; keys come from ``raw``, unchanged.

        ``features`` are :meth:`features` of ``conformed`` when the caller computed them already.
        A frame without rows gives the output columns without rows (the model does not run).
        """
        result = raw[self.key_columns].reset_index(drop=True).copy()
        quantiles = self.bundle.manifest["model"].get("quantiles_out", [])
        if len(conformed):
            features = self.features(conformed) if features is None else features
            scores = self.predict_features(features)
            bounds = self.predict_quantiles(features, quantiles) if quantiles else np.zeros((0, 0))
        else:
            width = len(self.classes or self.labels)
            scores = np.zeros((0, width)) if width else np.zeros(0)
            bounds = np.zeros((0, len(quantiles)))
        if self.task == "classification":
            result["probability"] = scores
            result["prediction"] = (scores >= self.threshold).astype(np.int64)
        elif self.task == "multiclass":
            for j, name in enumerate(self.classes):
                result[f"probability_{name}"] = scores[:, j]
            result["prediction"] = np.asarray(self.classes, dtype=object)[np.argmax(scores, axis=1)] \
                if len(scores) else np.zeros(0, dtype=object)
        elif self.task == "multilabel":
            for j, name in enumerate(self.labels):
                result[f"probability_{name}"] = scores[:, j]
            for j, name in enumerate(self.labels):
                result[f"prediction_{name}"] = (scores[:, j] >= self.thresholds[j]).astype(np.int64)
        else:
            result["prediction"] = scores
        for j, q in enumerate(quantiles):
            result[f"q{round(q * 100):02d}"] = bounds[:, j]
        return result


def good_rows(rows: int, problems: list[RowProblem]) -> np.ndarray:
    """A mask of the ``rows`` positions that no problem names."""
    keep = np.ones(rows, dtype=bool)
    keep[[p.row for p in problems]] = False
    return keep
