"""Batch Serving (17) online: a table of precomputed predictions answered by key over HTTP.

Problem: predictions computed in bulk (``mlpatterns predict BUNDLE INPUT scores.sqlite``)
are wanted by applications that already speak TensorFlow Serving's REST API or the Open
Inference Protocol v2; a second server, or a second protocol, for them would mean new
clients, and running the model again per request would waste the batch run.

Solution: :class:`PrecomputedServing` gives a
:class:`~mlpatterns.serving.batch_serving.PrecomputedPredictions` table the part of
:class:`~mlpatterns.serving.stateless_serving_function.ServingFunction` that the routes
use, so ``mlpatterns serve NAME=scores.sqlite`` serves it beside bundles, with versions,
labels and splits: its signature has no inputs, the bundle's key columns as keys and the
table's outputs. Each key value is converted to its column's type (a bad one is a 400
naming the row and field) and each row answered from the table by an index lookup, in
the request's order, repeats included: from rows of JSON values without pandas
(:meth:`~PrecomputedServing.predict_rows`, the online path of a few rows) or from frames
(:meth:`~PrecomputedServing.conform`, :meth:`~PrecomputedServing.predict_conformed`, the
batch path), with the same answers. A key the batch run never scored is a 404 naming
each such row and key, never a guess.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlpatterns.serving.batch_serving import PrecomputedPredictions, PredictionTableError
from mlpatterns.serving.http._common import RequestError, bad_rows_message
from mlpatterns.serving.online import InputError, RowProblem

if TYPE_CHECKING:  # pandas only for the batch path, as for a bundle (a server's cold start)
    import pandas as pd

__all__ = ["NO_PREDICTION_STATUS", "PrecomputedServing"]

NO_PREDICTION_STATUS = 404  # a well-formed key the batch run did not score: nothing to answer with
_KEY_KINDS = {"INTEGER": "integer", "REAL": "float", "TEXT": "text"}  # as a bundle's statistics name them
_OUTPUT_TYPES = {"INTEGER": "integer", "REAL": "number", "TEXT": "text"}  # as a bundle's signature names them
_SHOWN = 10  # rows named in an error

_logger = logging.getLogger("mlpatterns.serving.http.models")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class _KeyStatistics:
    """What :meth:`ServedModel.key_kind` reads from a bundle (``statistics.json``), from the table's key types."""

    def __init__(self, path: Path, kinds: dict[str, str]) -> None:
        self.path, self._kinds = path, kinds

    def json(self, name: str) -> dict[str, Any]:
        if name != "statistics.json":
            raise FileNotFoundError(f"{self.path}: a table of precomputed predictions has no {name}")
        return {"columns": {key: {"kind": kind} for key, kind in self._kinds.items()}}


class PrecomputedServing:
    """A table of precomputed predictions served like a bundle: keys in, the stored outputs out.

    Thread-safe as the table is (a read-only connection per thread). ``source`` says what
    computed the predictions: the bundle's name, its manifest digest, the path it was
    read from, when the table was written and how many keys it holds.

    Examples
    --------
    >>> serving = PrecomputedServing.open("scores.sqlite")  # doctest: +SKIP
    >>> serving.predict_rows([{"row_id": 7}, {"row_id": "3"}, {"row_id": 7}])  # doctest: +SKIP
    ([{'row_id': 7, 'prediction': 5.31...}, {'row_id': '3', 'prediction': 9.02...},
      {'row_id': 7, 'prediction': 5.31...}], [])
    """

    input_columns: list[str] = []  # noqa: RUF012 - no inputs: the key is the whole request
    null_values = None

    def __init__(self, table: PrecomputedPredictions) -> None:
        self.table = table
        self.name = table.bundle or table.path.stem
        self.task = table.task
        self.source = {"table": str(table.path), "bundle": table.bundle, "bundle_path": table.meta.get("bundle_path", ""),
                       "manifest_sha256": table.manifest_sha256, "created": table.created,
                       "rows": int(table.meta.get("rows", "0") or 0)}
        self.signature: dict[str, Any] = {
            "inputs": [], "keys": list(table.keys),
            "outputs": [{"name": o, "type": _OUTPUT_TYPES[table.types[o]]} for o in table.outputs],
            "precomputed": self.source}
        self.bundle = _KeyStatistics(table.path, {k: _KEY_KINDS[table.types[k]] for k in table.keys})

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> PrecomputedServing:
        """Open a table that ``mlpatterns predict ... OUTPUT.sqlite`` wrote; any other file raises
        :class:`~mlpatterns.serving.batch_serving.PredictionTableError` (or ``FileNotFoundError``)."""
        serving = cls(PrecomputedPredictions.open(path))
        _logger.info("%s: %d precomputed predictions of the bundle '%s' (manifest sha256 %s), written %s",
                     path, serving.source["rows"], serving.table.bundle, serving.table.manifest_sha256[:12],
                     serving.table.created)
        return serving

    @property
    def key_columns(self) -> list[str]:
        return list(self.table.keys)

    @property
    def output_columns(self) -> list[str]:
        return list(self.table.outputs)

    # -- the online path: rows of JSON values, no pandas -------------------------------------------
    def predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[RowProblem]]:
        """The stored row of each row's key (its keys as given, then the outputs), in order, as
        :class:`~mlpatterns.serving.online.OnlinePredictor` gives predictions; with a bad key
        value, nothing and the problems. A key never scored raises :class:`RequestError` (404)."""
        wanted, problems = self._typed({k: [row[k] for row in rows] for k in self.key_columns}, len(rows))
        if problems:
            return [], problems
        stored = self._stored(wanted, lambda row: {k: rows[row][k] for k in self.key_columns})
        return [{**{k: row[k] for k in self.key_columns}, **dict(zip(self.output_columns, values, strict=True))}
                for row, values in zip(rows, stored, strict=True)], []

    def _typed(self, columns: Mapping[str, Sequence[Any]], count: int) -> tuple[list[tuple[Any, ...]], list[RowProblem]]:
        """Each row's key converted to the table's key types, and a problem per value that cannot be."""
        typed, problems = [], []
        for key in self.key_columns:
            values = []
            for row, value in enumerate(columns[key]):
                try:
                    values.append(self.table.convert_key(key, value))
                except PredictionTableError as error:
                    problems.append(RowProblem(row, key, str(error)))
                    values.append(None)
            typed.append(values)
        problems.sort(key=lambda p: p.row)
        return list(zip(*typed, strict=True)) if typed and count else [], problems

    def _stored(self, wanted: list[tuple[Any, ...]], shown: Any) -> list[tuple[Any, ...]]:
        """The stored outputs of each key; a 404 naming every row (``shown(row)``: its keys as sent) without one."""
        found = self.table.fetch(wanted)
        absent = [row for row, key in enumerate(wanted) if key not in found]
        if absent:
            listed = "; ".join(f"row {row}: key {', '.join(f'{k}={_plain(v)!r}' for k, v in shown(row).items())} "
                               "has no precomputed prediction" for row in absent[:_SHOWN])
            more = f" (and {len(absent) - _SHOWN} more)" if len(absent) > _SHOWN else ""
            raise RequestError(f"{listed}{more}; {len(absent)} of {len(wanted)} row(s) have no precomputed prediction "
                               f"in {self.table.path.name} (the keys the bundle '{self.table.bundle}' scored in its "
                               "batch run)", NO_PREDICTION_STATUS)
        return [found[key] for key in wanted]

    # -- the batch path: DataFrames, as ServingFunction ---------------------------------------------
    def conform(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowProblem]]:
        """The key columns converted to the table's key types, and a problem per value that cannot be."""
        import pandas as pd

        missing = [k for k in self.key_columns if k not in frame.columns]
        if missing:
            raise InputError(f"missing key column(s) {missing}; the keys are {self.key_columns}")
        wanted, problems = self._typed({k: frame[k].tolist() for k in self.key_columns}, len(frame))
        columns = {k: [key[j] for key in wanted] for j, k in enumerate(self.key_columns)}
        return pd.DataFrame(columns, index=range(len(frame)), dtype=object), problems

    def predict_conformed(self, raw: pd.DataFrame, conformed: pd.DataFrame, **_: Any) -> pd.DataFrame:
        """The stored outputs of every row's key, in order; keys come from ``raw``, unchanged.

        A key without a stored prediction raises :class:`RequestError` (404) naming each such row.
        """
        import pandas as pd

        keys = {k: raw[k].reset_index(drop=True) for k in self.key_columns}
        # conformed by this table, or (a traffic split) by another version's, whose key types may differ
        wanted, problems = self._typed({k: conformed[k].tolist() for k in self.key_columns}, len(conformed))
        if problems:
            raise RequestError(bad_rows_message(problems))
        stored = self._stored(wanted, lambda row: {k: keys[k].iat[row] for k in self.key_columns})
        outputs: dict[str, Any] = {}
        for j, name in enumerate(self.output_columns):
            values = [row[j] for row in stored]
            kind = self.table.types[name]
            if kind == "INTEGER":
                outputs[name] = pd.array(values, dtype="Int64") if None in values else np.array(values, dtype=np.int64)
            else:
                outputs[name] = np.array(values, dtype=np.float64 if kind == "REAL" else object)
        return pd.DataFrame({**keys, **outputs}, index=range(len(wanted)))

    def close(self) -> None:
        self.table.close()

    def __repr__(self) -> str:
        return f"PrecomputedServing({str(self.table.path)!r})"
