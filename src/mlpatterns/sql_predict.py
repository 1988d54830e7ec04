"""Batch Serving (17) in SQL: a bundle's predictions as a DuckDB function, as BigQuery ML's ``ML.PREDICT``.

:func:`register_bundle` adds one scalar function to a DuckDB connection; it takes the
bundle's input columns in signature order and returns the bundle's main output, scored by
the same :class:`~mlpatterns.serving.stateless_serving_function.ServingFunction` as
``mlpatterns predict``::

    con = duckdb.connect()
    register_bundle(con, "flights_gbm", "runs/flights/bundles/gbm")
    bundle_sql_signature("runs/flights/bundles/gbm")   # 'carrier, origin, ...': the argument list
    con.sql("SELECT key, flights_gbm(carrier, origin, ...) AS p FROM t")

=====================  =================================================
bundle task            the function returns
=====================  =================================================
classification         ``probability`` (DOUBLE), P(positive)
regression             ``prediction`` (DOUBLE)
multiclass             ``prediction`` (VARCHAR), the predicted class name
=====================  =================================================
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from mlpatterns.serving.stateless_serving_function import ServingFunction, good_rows

__all__ = ["arrow_scorer", "bundle_sql_signature", "bundle_sql_types", "register_bundle"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OUTPUTS = {"classification": ("probability", "DOUBLE"), "regression": ("prediction", "DOUBLE"),
            "multiclass": ("prediction", "VARCHAR")}


def _sql_type(item: dict[str, Any]) -> str:
    """The DuckDB type of one signature input."""
    kind, dtype = item["type"], str(item.get("dtype", "")).lower()
    if kind == "number":
        return "BIGINT" if dtype.startswith(("int", "uint")) else "DOUBLE"
    if kind == "boolean":
        return "BOOLEAN"
    if kind == "date":
        return "VARCHAR" if dtype in ("str", "string", "object") else "DATE"
    return "VARCHAR"


def _quoted(name: str) -> str:
    return name if _IDENTIFIER.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def bundle_sql_types(serving: ServingFunction) -> list[tuple[str, str]]:
    """``(column, DuckDB type)`` for each input of a loaded bundle, in signature order."""
    return [(item["name"], _sql_type(item)) for item in serving.signature["inputs"]]


def bundle_sql_signature(bundle_path: str | os.PathLike[str]) -> str:
    """The argument list of the function :func:`register_bundle` makes: ``'Price, Income, ...'``.

    The bundle's input columns in signature order (quoted where not plain identifiers),
    ready to paste between the parentheses of ``SELECT key, name(...) FROM t``.
    """
    return ", ".join(_quoted(name) for name, _ in bundle_sql_types(ServingFunction.load(bundle_path)))


def arrow_scorer(serving: ServingFunction) -> Any:
    """The vectorized function :func:`register_bundle` registers: Arrow columns in signature order -> the
    bundle's main output, NULL for a row the bundle refuses (usable on any Arrow batches)."""
    output, _ = _OUTPUTS[serving.task]
    names = serving.input_columns

    def score(*columns: pa.ChunkedArray | pa.Array) -> pa.Array:
        frame = pd.DataFrame({name: column.to_pandas() for name, column in zip(names, columns, strict=True)})
        rows = len(frame)
        for key in serving.key_columns:  # keys stay in SQL; the function scores features only
            if key not in frame:
                frame[key] = 0
        conformed, problems = serving.conform(frame)
        good = good_rows(rows, problems)
        values = np.empty(rows, dtype=object)
        if good.any():
            result = serving.predict_conformed(frame.iloc[good], conformed.iloc[good])
            values[good] = result[output].to_numpy(dtype=object)
        mask = ~good  # a bad value gives NULL for its row, not an error of the whole query
        if serving.task == "multiclass":
            return pa.array(values, type=pa.string(), mask=mask)
        return pa.array(np.where(good, values, 0.0).astype(np.float64), type=pa.float64(), mask=mask)

    # DuckDB reads the number of arguments from the signature
    positional = inspect.Parameter.POSITIONAL_ONLY
    parameters = [inspect.Parameter(f"x{i}", positional) for i in range(len(names))]
    score.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return score


def register_bundle(
    connection: duckdb.DuckDBPyConnection,
    name: str,
    bundle_path: str | os.PathLike[str],
    *,
    public_key: str | os.PathLike[str] | bytes | None = None,
) -> ServingFunction:
    """Register ``name(input, ...)``: the bundle's main output for each row, as ``ML.PREDICT``.

    The bundle is read and verified once, here (a tampered bundle raises
    :class:`~mlpatterns.serving.bundle.BundleError` and nothing is registered); the
    function is a vectorized Arrow UDF that scores each batch of rows through the
    :class:`ServingFunction`, so its results equal ``mlpatterns predict``'s. It takes the
    input columns in signature order (:func:`bundle_sql_signature` gives the list) with
    DuckDB types from the signature: numbers DOUBLE, integers BIGINT, text VARCHAR,
    booleans BOOLEAN, dates DATE, or VARCHAR where the bundle was trained on dates as ISO
    text (pass ``CAST(day AS VARCHAR)`` for a DATE column then). A row
    with a value the bundle refuses gives NULL; a NULL goes to the bundle as a missing
    value. Example::

        register_bundle(con, "flights_gbm", "runs/flights/bundles/gbm")
        con.sql("SELECT key, flights_gbm(carrier, origin, ...) AS p FROM t")

    ``name`` must be a plain identifier; registering it again replaces the function.
    Returns the loaded :class:`ServingFunction`.
    """
    if not isinstance(connection, duckdb.DuckDBPyConnection):
        raise TypeError(f"register_bundle expects a duckdb connection, got {type(connection).__name__}")
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"the function name must be a plain identifier (letters, digits, _), got {name!r}")
    serving = ServingFunction.load(bundle_path, public_key=public_key)
    if serving.task not in _OUTPUTS:
        raise ValueError(f"a {serving.task} bundle has no single output to return in SQL; "
                         f"supported tasks: {sorted(_OUTPUTS)}")
    parameters = [kind for _, kind in bundle_sql_types(serving)]
    with contextlib.suppress(duckdb.InvalidInputException):  # not registered yet
        connection.remove_function(name)
    connection.create_function(name, arrow_scorer(serving), parameters, _OUTPUTS[serving.task][1],
                               type="arrow", null_handling="special", side_effects=False)
    return serving
