"""Stateless Serving Function (16): a loaded bundle as one function from raw rows to predictions.

Problem: a trained model is tied to the language, framework and preprocessing
code that trained it, and clients should not need to know any of that.

Solution: :class:`ServingFunction` loads a verified bundle (see
:mod:`mlpatterns.serving.bundle`): the fitted transform (21) from JSON and the model
from ONNX, run by ONNX Runtime. It holds no state between calls, takes raw input
columns as a DataFrame, checks them against the bundle's signature, applies exactly
the training-time transform and returns the predictions with the key columns
passed through unchanged (Keyed Predictions, 20).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.reproducibility.transform import FeatureTransform, TransformedFeatures
from mlpatterns.serving.bundle import Bundle, BundleError, read_bundle

__all__ = ["InputError", "RowProblem", "ServingFunction"]


@dataclass(frozen=True)
class RowProblem:
    """One bad input row: its position, the column and what was wrong."""

    row: int
    column: str
    problem: str


@dataclass
class InputError(ValueError):
    """Input that does not match the signature; ``problems`` lists every bad row."""

    message: str
    problems: list[RowProblem] = field(default_factory=list)

    def __str__(self) -> str:
        shown = "; ".join(f"row {p.row}, {p.column}: {p.problem}" for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        return f"{self.message}{': ' + shown + more if shown else ''}"


class ServingFunction:
    """Raw rows in, keyed predictions out, through a verified bundle.

    Examples
    --------
    ``serving = ServingFunction.load("runs/flights/bundles/gbm")`` then
    ``serving.predict(frame)`` returns a DataFrame with the key columns and
    ``probability``/``prediction`` (classification) or ``prediction`` (regression).
    """

    def __init__(self, bundle: Bundle) -> None:
        import onnxruntime as ort

        self.bundle = bundle
        manifest = bundle.manifest
        self.name: str = manifest["name"]
        self.task: str = manifest["task"]
        self.signature: dict[str, Any] = manifest["signature"]
        self.threshold: float = float(manifest.get("threshold", 0.5))
        try:
            self.transform = FeatureTransform.from_dict(bundle.json(manifest["transform"]))
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"{bundle.path}: the transform cannot be rebuilt ({error})") from error
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("MLPATTERNS_ONNX_THREADS", "1"))
        try:
            self._session = ort.InferenceSession(
                bundle.files[manifest["model"]["file"]], options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise BundleError(f"{bundle.path}: the model file is not a loadable ONNX model ({error})") from error
        self._input_names = [i.name for i in self._session.get_inputs()]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ServingFunction:
        """Read, verify and load a bundle directory."""
        return cls(read_bundle(path))

    @property
    def input_columns(self) -> list[str]:
        return [item["name"] for item in self.signature["inputs"]]

    @property
    def key_columns(self) -> list[str]:
        return list(self.signature.get("keys", []))

    @property
    def output_columns(self) -> list[str]:
        return [item["name"] for item in self.signature["outputs"]]

    # -- input checks ----------------------------------------------------------------------------
    def check_input(self, frame: pd.DataFrame) -> list[RowProblem]:
        """Return the problems of each bad row; raise :class:`InputError` for missing columns."""
        missing = [c for c in [*self.input_columns, *self.key_columns] if c not in frame.columns]
        if missing:
            raise InputError(
                f"missing column(s) {missing}; the model '{self.name}' expects inputs "
                f"{self.input_columns} and keys {self.key_columns}"
            )
        problems: list[RowProblem] = []
        positions = np.arange(len(frame))
        for item in self.signature["inputs"]:
            if item["type"] != "number":
                continue
            column = frame[item["name"]]
            if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
                continue
            converted = pd.to_numeric(column, errors="coerce")
            bad = (converted.isna() & column.notna()).to_numpy()
            for row in positions[bad]:
                problems.append(RowProblem(int(row), item["name"], f"expected a number, got {column.iloc[row]!r}"))
        for key in self.key_columns:
            bad = frame[key].isna().to_numpy()
            for row in positions[bad]:
                problems.append(RowProblem(int(row), key, "key is null; every row needs its key"))
        return sorted(problems, key=lambda p: p.row)

    # -- prediction ------------------------------------------------------------------------------
    def features(self, frame: pd.DataFrame) -> TransformedFeatures:
        """The model inputs the bundle computes from raw rows (used by the skew test)."""
        return self.transform.transform(frame)

    def predict_features(self, features: TransformedFeatures) -> np.ndarray:
        """Model output for transformed features: P(positive) or the predicted value."""
        if self._input_names == ["features"]:
            feeds = {"features": features.matrix()}
        else:
            feeds = {"numeric": features.numeric, "categorical": features.categorical}
        outputs = self._session.run(None, feeds)
        kind = self.bundle.manifest["model"].get("output", "value")
        if kind == "probabilities":  # scikit-learn classifier: [labels, probabilities]
            return np.asarray(outputs[1], dtype=np.float64)[:, 1]
        return np.asarray(outputs[0], dtype=np.float64).reshape(-1)

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
        problems = self.check_input(frame)
        if problems:
            keep = np.ones(len(frame), dtype=bool)
            keep[[p.row for p in problems]] = False
            frame = frame.iloc[keep]
        result = frame[self.key_columns].reset_index(drop=True).copy()
        scores = self.predict_features(self.features(frame))
        if self.task == "classification":
            result["probability"] = scores
            result["prediction"] = (scores >= self.threshold).astype(np.int64)
        else:
            result["prediction"] = scores
        return result, problems
