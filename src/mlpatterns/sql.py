"""The mlpatterns hashing and feature functions inside DuckDB SQL.

The book writes its patterns in BigQuery SQL: ``ABS(MOD(FARM_FINGERPRINT(x), N))``
for a Hashed Feature (1) and for Repeatable Splitting (22), ``ML.FEATURE_CROSS`` for
a Feature Cross (3), ``ML.BUCKETIZE`` for bucketized numbers. :func:`register` adds
the same functions to a DuckDB connection, as vectorized Arrow UDFs that call the
Python implementation (:mod:`mlpatterns.hashing`, :func:`~mlpatterns.data.feature_cross.cross_values`,
:func:`~mlpatterns.data.bucketize.bucketize`), so a query and a Python pipeline
agree bit for bit:

=====================================  =========  =============================================
function                               returns    computes
=====================================  =========  =============================================
``farm_fingerprint(VARCHAR)``          BIGINT     BigQuery ``FARM_FINGERPRINT``
``hash_bucket(VARCHAR, n)``            BIGINT     ``ABS(MOD(FARM_FINGERPRINT(x), n))``
``hash_bucket_keras(VARCHAR, n)``      BIGINT     ``keras.layers.Hashing(num_bins=n)``
``feature_cross(VARCHAR, ...)``        VARCHAR    ``'a_b'``: one cross of 2 to 10 values,
                                                  as in ``ML.FEATURE_CROSS``
``bucketize(DOUBLE, DOUBLE[])``        VARCHAR    ``'bin_N'``, as ``ML.BUCKETIZE``; a third
                                                  argument ``exclude_boundaries`` (BOOLEAN)
``bigquery_string(x)``                 VARCHAR    BigQuery ``CAST(x AS STRING)``, for the
                                                  types of :data:`BIGQUERY_STRING_TYPES`
=====================================  =========  =============================================

A NULL argument gives NULL, as in BigQuery. Other types are refused by DuckDB's
binder ("No function matches ... Candidate functions: farm_fingerprint(VARCHAR)"):
cast them with ``bigquery_string(x)``, which writes them as BigQuery does. DuckDB's own
``CAST(x AS STRING)`` agrees for DATE, BOOLEAN, integers and whole-second timestamps
only: it trims the zeros of a fraction of a second (``'.1'`` for BigQuery's ``'.100'``),
writes TIMESTAMPTZ in the session's time zone and a DOUBLE ``1.0`` as ``'1.0'``. The
Repeatable Splitting conditions of
:func:`~mlpatterns.reproducibility.repeatable_splitting.split_sql_condition` run
unchanged on a connection from :func:`connect`.

Examples
--------
>>> con = connect()
>>> con.sql("SELECT farm_fingerprint('foo'), hash_bucket('foo', 10), "
...         "hash_bucket_keras('Hello', 3), feature_cross('a', 'b')").fetchall()
[(6150913649986995171, 1, 0, 'a_b')]
>>> con.sql("SELECT farm_fingerprint(NULL)").fetchall()
[(None,)]
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from mlpatterns.hashing import bucket_from_fingerprint, fingerprint64_column, to_bigquery_strings

__all__ = ["BIGQUERY_STRING_TYPES", "FUNCTIONS", "MAX_CROSSED_FEATURES", "connect", "register"]

MAX_CROSSED_FEATURES = 10  # ML.FEATURE_CROSS takes at most 10 features
FUNCTIONS: tuple[str, ...] = (
    "farm_fingerprint",
    "hash_bucket",
    "hash_bucket_keras",
    "feature_cross",
    "bucketize",
    "bigquery_string",
)
# The DuckDB types bigquery_string takes, each passed to Python exactly (one UNION member
# per type: DuckDB functions have no overloads). Narrower integers widen to BIGINT,
# FLOAT and DECIMAL to DOUBLE; any other type is refused by DuckDB's binder.
BIGQUERY_STRING_TYPES: tuple[str, ...] = (
    "VARCHAR",
    "BOOLEAN",
    "BIGINT",
    "UBIGINT",
    "HUGEINT",
    "DOUBLE",
    "DATE",
    "TIMESTAMP",
    "TIMESTAMP_S",
    "TIMESTAMP_MS",
    "TIMESTAMP_NS",
    "TIMESTAMPTZ",
)
_BIGQUERY_STRING_PARAMETER = "UNION({})".format(
    ", ".join(f"m{i} {kind}" for i, kind in enumerate(BIGQUERY_STRING_TYPES))
)


def _fingerprints(values: pa.ChunkedArray) -> np.ndarray:
    # DuckDB removes NULL rows before calling (default null handling); the
    # null_value only guards against a caller that passes them anyway.
    return fingerprint64_column(values, null_value=0)


def _farm_fingerprint(values: pa.ChunkedArray) -> pa.Array:
    return pa.array(_fingerprints(values), type=pa.int64())


def _hash_bucket_udf(name: str, convention: str) -> Callable[..., pa.Array]:
    def hash_bucket(values: pa.ChunkedArray, num_buckets: pa.ChunkedArray) -> pa.Array:
        fingerprints = _fingerprints(values)
        counts = num_buckets.to_numpy()
        out = np.empty(len(fingerprints), dtype=np.int64)
        for count in np.unique(counts):  # usually one constant n
            if count < 1:
                raise ValueError(
                    f"{name}(value, num_buckets): num_buckets must be >= 1, got {count}"
                )
            rows = counts == count
            out[rows] = bucket_from_fingerprint(fingerprints[rows], int(count), convention)
        return pa.array(out, type=pa.int64())

    return hash_bucket


def _bigquery_string(values: pa.ChunkedArray) -> pa.Array:
    """``CAST(x AS STRING)`` as BigQuery writes it, by :func:`mlpatterns.hashing.to_bigquery_strings`.

    DuckDB's own ``CAST(x AS VARCHAR)`` trims the zeros of a fraction of a second
    (``'05:00:00.12'`` where BigQuery writes ``'05:00:00.120'``), writes a TIMESTAMPTZ in
    the session's time zone and a DOUBLE ``1.0`` as ``'1.0'``; this function does not.
    """
    union = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    codes = union.type_codes.to_numpy()
    out = np.empty(len(union), dtype=object)
    for code in np.unique(codes):
        rows = codes == code
        member = union.field(int(code))
        if not rows.all():
            member = member.filter(pa.array(rows))
        kind = BIGQUERY_STRING_TYPES[int(code)]
        if pa.types.is_decimal(member.type):  # HUGEINT arrives as decimal128(38, 0)
            member = [None if v is None else int(v) for v in member.to_pylist()]
        try:
            out[rows] = to_bigquery_strings(member)
        except (OverflowError, ValueError) as error:
            raise ValueError(
                f"bigquery_string(x): a {kind} value is outside the range Python and BigQuery "
                f"can write (years 0001 to 9999, no infinity): {error}"
            ) from error
    return pa.array(out, type=pa.string())


def _feature_cross_udf(arity: int) -> Callable[..., pa.Array]:
    def feature_cross(*columns: pa.ChunkedArray) -> pa.Array:
        from mlpatterns.data.feature_cross import cross_values

        return pa.array(cross_values(*columns), type=pa.string())

    # DuckDB reads the number of arguments from the signature
    positional = inspect.Parameter.POSITIONAL_ONLY
    parameters = [inspect.Parameter(f"f{i}", positional) for i in range(1, arity + 1)]
    feature_cross.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return feature_cross


def _bucketize(
    values: pa.ChunkedArray, split_points: pa.ChunkedArray, exclude_boundaries: pa.ChunkedArray
) -> pa.Array:
    from mlpatterns.data.bucketize import bucketize

    numbers = values.to_numpy()
    flags = exclude_boundaries.to_numpy(zero_copy_only=False)
    points = split_points.combine_chunks()
    lengths = np.diff(points.offsets.to_numpy())
    if len(lengths) and (lengths == lengths[0]).all() and (flags == flags[0]).all():
        table = (
            points.flatten().to_numpy(zero_copy_only=False).reshape(len(lengths), int(lengths[0]))
        )
        if (table == table[0]).all():  # the usual case, constant arguments: one call
            return pa.array(bucketize(numbers, table[0], bool(flags[0])), type=pa.string())
    groups: dict[tuple[bool, tuple[float, ...]], list[int]] = {}
    for row, (flag, row_points) in enumerate(zip(flags, points.to_pylist(), strict=True)):
        groups.setdefault((bool(flag), tuple(row_points)), []).append(row)
    out = np.empty(len(numbers), dtype=object)
    for (flag, row_points), rows in groups.items():
        out[rows] = bucketize(numbers[rows], list(row_points), flag)
    return pa.array(out, type=pa.string())


def _create(
    connection: duckdb.DuckDBPyConnection,
    name: str,
    function: Any,
    parameters: list[str],
    return_type: str,
    **options: Any,
) -> None:
    with contextlib.suppress(duckdb.InvalidInputException):  # not registered yet
        connection.remove_function(name)
    connection.create_function(name, function, parameters, return_type, type="arrow", **options)


def register(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Add the mlpatterns SQL functions to ``connection`` and return it.

    Registering again replaces them. ``feature_cross(a, b, ...)`` is a temporary macro
    over ``feature_cross_2`` ... ``feature_cross_10``, one function per arity (DuckDB's
    Python functions cannot take a variable number of arguments).

    Parameters
    ----------
    connection : duckdb.DuckDBPyConnection

    Returns
    -------
    duckdb.DuckDBPyConnection
        The same connection.
    """
    if not isinstance(connection, duckdb.DuckDBPyConnection):
        raise TypeError(
            f"register expects a duckdb connection (duckdb.connect()), got {type(connection).__name__}"
        )
    _create(connection, "farm_fingerprint", _farm_fingerprint, ["VARCHAR"], "BIGINT")
    _create(
        connection,
        "hash_bucket",
        _hash_bucket_udf("hash_bucket", "bigquery"),
        ["VARCHAR", "BIGINT"],
        "BIGINT",
    )
    _create(
        connection,
        "hash_bucket_keras",
        _hash_bucket_udf("hash_bucket_keras", "keras"),
        ["VARCHAR", "BIGINT"],
        "BIGINT",
    )
    overloads = []
    for arity in range(2, MAX_CROSSED_FEATURES + 1):
        _create(
            connection,
            f"feature_cross_{arity}",
            _feature_cross_udf(arity),
            ["VARCHAR"] * arity,
            "VARCHAR",
        )
        names = ", ".join(f"f{i}" for i in range(1, arity + 1))
        overloads.append(f"({names}) AS feature_cross_{arity}({names})")
    connection.execute(f"CREATE OR REPLACE TEMP MACRO feature_cross{', '.join(overloads)}")
    # A NULL member of a UNION reaches the function (DuckDB filters only top-level NULLs),
    # so it handles NULLs itself and returns NULL for them.
    _create(
        connection,
        "bigquery_string",
        _bigquery_string,
        [_BIGQUERY_STRING_PARAMETER],
        "VARCHAR",
        null_handling="special",
    )
    _create(connection, "bucketize_3", _bucketize, ["DOUBLE", "DOUBLE[]", "BOOLEAN"], "VARCHAR")
    connection.execute(
        "CREATE OR REPLACE TEMP MACRO bucketize(x, split_points) AS "
        "bucketize_3(x, split_points, false), (x, split_points, exclude_boundaries) AS "
        "bucketize_3(x, split_points, exclude_boundaries)"
    )
    return connection


def connect(database: str = ":memory:", **options: Any) -> duckdb.DuckDBPyConnection:
    """A new DuckDB connection (``duckdb.connect(database, **options)``) with :func:`register` run.

    >>> connect().sql("SELECT bucketize(2.5, [1, 2, 3]), bucketize(2.5, [1, 2, 3], true)").fetchall()
    [('bin_3', 'bin_2')]
    """
    return register(duckdb.connect(database, **options))
