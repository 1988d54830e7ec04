"""Two-Phase Predictions (19): a small model on the device decides which rows the large one sees.

Problem: a device must answer with low latency and without a connection, but the model
that answers the full question is too big for it (or too costly to call for every row).

Solution: :class:`TwoPhaseModel` runs phase 1, a small (quantized) ONNX model, in
process with ONNX Runtime: it scores each row for the coarse question ("is this worth a
closer look?"). Only the rows it flags (score at or above ``threshold``) go to phase 2,
the large model on the server, all of them in one request (:class:`HttpPhaseTwo`) or to
a local :class:`~mlpatterns.serving.ServingFunction` offline. Every other row gets the
``negative`` answer at once, without a call. The key columns pass through unchanged
(Keyed Predictions, 20), in the input order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.serving.two_phase_predictions.phase_one import phase_one_columns

__all__ = ["TwoPhaseModel"]


class TwoPhaseModel:
    """Phase 1 on the device, phase 2 on the server for the rows phase 1 flags.

    Parameters
    ----------
    phase_one : bytes or path
        The phase-1 ONNX model (e.g. from :func:`fit_phase_one`, then
        :func:`quantize_phase_one`): one float32 input of the ``columns`` and one
        output, the probability that a row is worth a closer look (rows x 1, or rows x 2
        whose second column is used, as scikit-learn classifiers give).
    threshold : float
        Rows whose phase-1 score is at or above it go to phase 2 (see :func:`choose_threshold`).
    phase_two : object with ``predict(frame) -> DataFrame``
        An :class:`HttpPhaseTwo` client or a local ``ServingFunction`` (offline); its
        ``prediction`` column is the final answer of the rows it sees.
    negative : object
        The answer of the rows phase 1 does not flag (e.g. ``"normal"``).
    keys : sequence of str
        Columns passed through unchanged to the result (Keyed Predictions, 20).
    columns : sequence of str, optional
        The phase-1 feature columns; by default those stored in the model's metadata.

    Examples
    --------
    ``TwoPhaseModel(onnx_bytes, 0.08, HttpPhaseTwo(url, "weight"), negative="normal",
    keys=["row_id"]).predict(frame)`` returns ``row_id``, ``phase_one_score``,
    ``phase_two_called``, ``prediction`` and phase 2's other outputs (missing where not called).
    """

    def __init__(self, phase_one: bytes | str | os.PathLike[str], threshold: float, phase_two: Any, *,
                 negative: Any = 0, keys: Sequence[str] = (), columns: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
            raise ValueError(f"threshold: expected a finite number, got {threshold!r}")
        if not callable(getattr(phase_two, "predict", None)):
            raise TypeError(f"phase_two: expected an object with predict(frame), got {type(phase_two).__name__}")
        self.model_bytes = phase_one if isinstance(phase_one, bytes) else Path(phase_one).read_bytes()
        self.threshold = float(threshold)
        self.phase_two = phase_two
        self.negative = negative
        self.keys = list(keys)
        stored = phase_one_columns(self.model_bytes)
        self.columns = list(columns) if columns is not None else stored
        if not self.columns:
            raise ValueError("columns: the phase-1 model stores no feature names; pass columns=[...]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a device has a core or two; one row needs no more
        self._session = ort.InferenceSession(self.model_bytes, options, providers=["CPUExecutionProvider"])
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"phase_one: expected a model with one input, got {[i.name for i in inputs]}")
        self._input = inputs[0].name
        width = inputs[0].shape[1] if len(inputs[0].shape) == 2 else None
        if isinstance(width, int) and width != len(self.columns):
            raise ValueError(f"columns: the phase-1 model takes {width} features, got {len(self.columns)} names "
                             f"{self.columns}")
        outputs = self._session.get_outputs()
        names = [o.name for o in outputs]
        self._output = "probabilities" if "probabilities" in names else ("probability" if "probability" in names
                                                                          else names[-1])

    @classmethod
    def from_run(cls, folder: str | os.PathLike[str], phase_two: Any = None, *,
                 threshold: float | None = None) -> TwoPhaseModel:
        """The two-phase model that ``mlpatterns run`` described in ``folder`` (a spec's ``two_phase:``
        section writes ``runs/NAME/two_phase``): its phase-1 model, threshold, columns, negative answer and keys.

        ``phase_two``: an :class:`HttpPhaseTwo` client of the served bundle; by default the
        run's own bundle of the phase-2 model, loaded as a local ``ServingFunction`` (offline), which must be
        the very bundle the threshold was chosen with (its manifest digest is recorded).
        ``threshold`` overrides the recorded one.
        """
        from mlpatterns.serving.two_phase_predictions.artifact import read_two_phase

        folder = Path(folder)
        description, model = read_two_phase(folder)
        if phase_two is None:
            from mlpatterns.serving.stateless_serving_function import ServingFunction

            recorded = description.get("phase_two", {})
            if "bundle" not in recorded:
                raise ValueError(f"{folder}: names no phase-2 bundle; pass phase_two=HttpPhaseTwo(url, model)")
            phase_two = ServingFunction.load(folder / recorded["bundle"])
            digest = phase_two.bundle.manifest.get("manifest_sha256")
            if recorded.get("manifest_sha256") and digest != recorded["manifest_sha256"]:
                raise ValueError(f"{folder / recorded['bundle']}: not the bundle the threshold was chosen with "
                                 f"(manifest digest {digest}, recorded {recorded['manifest_sha256']}); run the "
                                 "spec again, or pass phase_two")
        chosen = description["threshold"] if threshold is None else threshold
        return cls(model, chosen, phase_two, negative=description["negative"], keys=description["keys"],
                   columns=description["columns"])

    @property
    def size_bytes(self) -> int:
        """The phase-1 model's size on the device."""
        return len(self.model_bytes)

    def _check(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The phase-1 matrix (float32) of ``frame``, or a ValueError naming the row and column."""
        part = None
        if isinstance(frame, np.ndarray):  # the device's fast path: the phase-1 columns, in order
            if frame.ndim != 2 or frame.shape[1] != len(self.columns):
                raise ValueError(f"expected an array of shape (rows, {len(self.columns)}), one column per "
                                 f"phase-1 feature {self.columns}, got shape {frame.shape}")
            if frame.dtype.kind in "biuf":
                numbers = frame.astype(np.float64)
            else:
                part = pd.DataFrame(frame, columns=self.columns)
                numbers = _numbers(part, self.columns)
        elif isinstance(frame, pd.DataFrame):
            missing = [c for c in [*self.columns, *self.keys] if c not in frame.columns]
            if missing:
                raise ValueError(f"missing column(s) {missing}; phase 1 takes {self.columns} and the keys are "
                                 f"{self.keys}")
            for key in self.keys:
                nulls = np.flatnonzero(frame[key].isna().to_numpy())
                if len(nulls):
                    raise ValueError(f"row {nulls[0]}, key '{key}': key is null; every row needs its key")
            part = frame
            numbers = _numbers(frame, self.columns)
        else:
            raise TypeError(f"expected a DataFrame of rows, got {type(frame).__name__}")
        bad = ~np.isfinite(numbers)
        if bad.any():
            row, j = np.argwhere(bad)[0]
            more = int(bad.sum()) - 1
            value = numbers[row, j] if part is None else part[self.columns[j]].iloc[row]
            raise ValueError(f"row {row}, column '{self.columns[j]}': expected a finite number, got "
                             f"{value!r}" + (f" (and {more} more bad value(s))" if more else ""))
        return numbers.astype(np.float32)

    def phase_one_scores(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Phase 1's score of each row: the probability that it is worth a closer look.

        ``frame`` is a DataFrame with the phase-1 columns (and the keys), or, on the
        device's fast path, a numeric array whose columns are the phase-1 columns in order.
        """
        matrix = self._check(frame)
        if not len(matrix):
            return np.zeros(0)
        out = np.asarray(self._session.run([self._output], {self._input: matrix})[0], dtype=np.float64)
        return out.reshape(len(matrix), -1)[:, -1]

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Route every row: phase 1 scores it; the flagged rows go to phase 2 in one call.

        Returns the key columns, ``phase_one_score``, ``phase_two_called`` (bool),
        ``prediction`` (phase 2's answer where called, ``negative`` elsewhere) and phase
        2's other outputs (missing where phase 2 was not called), one row per input row,
        in the input order.
        """
        scores = self.phase_one_scores(frame)
        flagged = scores >= self.threshold
        result = frame[self.keys].reset_index(drop=True).copy()
        result["phase_one_score"] = scores
        result["phase_two_called"] = flagged
        answers = pd.Series([self.negative] * len(frame), dtype=object)
        if flagged.any():
            sent = frame.iloc[np.flatnonzero(flagged)]
            answer = self.phase_two.predict(sent).reset_index(drop=True)
            _check_answer(answer, sent)
            answers.iloc[np.flatnonzero(flagged)] = answer["prediction"].to_numpy(dtype=object)
            for column in answer.columns:
                if column != "prediction" and column not in result.columns:
                    values = pd.Series([None] * len(frame), dtype=object)
                    values.iloc[np.flatnonzero(flagged)] = answer[column].to_numpy(dtype=object)
                    result[column] = values.infer_objects()
        result["prediction"] = answers.infer_objects()
        return result


def _numbers(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The columns as float64, column by column (a frame's selection costs more than one row's
    scoring); a value that is not a number becomes NaN, named by the caller."""
    matrix = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, name in enumerate(columns):
        values = frame[name]
        if pd.api.types.is_numeric_dtype(values.dtype):  # booleans are 0/1
            matrix[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            matrix[:, j] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return matrix


def _check_answer(answer: pd.DataFrame, sent: pd.DataFrame) -> None:
    """Phase 2 answered every row sent, in order: its key columns equal those sent (Keyed Predictions, 20)."""
    if "prediction" not in answer.columns:
        raise ValueError(f"phase 2 gave no 'prediction' column, only {list(answer.columns)}")
    if len(answer) != len(sent):
        raise ValueError(f"phase 2 answered {len(answer)} rows for the {len(sent)} sent")
    for key in [c for c in answer.columns if c in sent.columns]:
        if [str(v) for v in answer[key].tolist()] != [str(v) for v in sent[key].tolist()]:
            raise ValueError(f"phase 2's key '{key}' does not match the rows sent; refusing to join its answers")
