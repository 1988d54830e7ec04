"""The DuckDB SQL functions agree row for row with the Python implementation."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlpatterns.hashing import fingerprint64_column, hash_bucket
from mlpatterns.sql import FUNCTIONS, connect, register


def _random_strings(n: int, seed: int = 0) -> list[str | None]:
    """ASCII, accented, CJK, emoji and combining characters; empty strings and NULLs."""
    rng = np.random.default_rng(seed)
    alphabets = [
        [chr(c) for c in range(32, 127)],
        list("éèüßøñçÅ"),
        [chr(c) for c in range(0x4E00, 0x4E40)],
        ["😀", "🚀", "👩‍💻", "🇫🇷"],
        ["e\u0301", "\u200b", "\t", "\n"],
    ]
    out: list[str | None] = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.02:
            out.append(None)
        elif roll < 0.04:
            out.append("")
        else:
            alphabet = alphabets[rng.integers(len(alphabets))]
            length = int(rng.integers(1, 40))
            out.append("".join(alphabet[i] for i in rng.integers(len(alphabet), size=length)))
    return out


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return connect()


@pytest.fixture(scope="module")
def strings(con: duckdb.DuckDBPyConnection) -> list[str | None]:
    values = _random_strings(30_000)
    con.register("strings", pa.table({"i": np.arange(len(values)), "s": pa.array(values)}))
    return values


def _masked(values: list[str | None], result: np.ndarray) -> list[int | None]:
    return [None if v is None else int(r) for v, r in zip(values, result, strict=True)]


def test_farm_fingerprint_matches_python_row_for_row(con, strings):
    sql = [
        row[0] for row in con.sql("SELECT farm_fingerprint(s) FROM strings ORDER BY i").fetchall()
    ]
    python = _masked(strings, fingerprint64_column(strings, null_value=0))
    assert sql == python
    assert sum(v is None for v in sql) > 0 and "" in strings


@pytest.mark.parametrize(
    ("function", "convention"), [("hash_bucket", "bigquery"), ("hash_bucket_keras", "keras")]
)
@pytest.mark.parametrize("num_buckets", [1, 10, 97])
def test_hash_buckets_match_python(con, strings, function, convention, num_buckets):
    query = f"SELECT {function}(s, {num_buckets}) FROM strings ORDER BY i"
    sql = [row[0] for row in con.sql(query).fetchall()]
    python = hash_bucket(strings, num_buckets, convention=convention, null_bucket=0)
    assert sql == _masked(strings, python)


def test_published_values(con):
    # FARM_FINGERPRINT('foo') from the BigQuery documentation; Keras Hashing(num_bins=3) docs
    row = con.sql(
        "SELECT farm_fingerprint('foo'), hash_bucket_keras('Hello', 3), "
        "hash_bucket_keras('TensorFlow', 3), hash_bucket_keras('2.x', 3)"
    ).fetchall()[0]
    assert row == (6150913649986995171, 0, 2, 2)


def test_conventions_differ_only_for_negative_fingerprints(con, strings):
    rows = con.sql(
        "SELECT farm_fingerprint(s) < 0, hash_bucket(s, 10) = hash_bucket_keras(s, 10) "
        "FROM strings WHERE s IS NOT NULL"
    ).fetchall()
    assert all(same for negative, same in rows if not negative)
    assert not all(same for negative, same in rows if negative)


def test_per_row_bucket_counts(con):
    rows = con.sql(
        "SELECT hash_bucket(s, n), n FROM (VALUES ('a', 2), ('a', 7), ('b', 7), ('c', NULL)) t(s, n)"
    ).fetchall()
    expected = [int(hash_bucket([s], n)[0]) for s, n in [("a", 2), ("a", 7), ("b", 7)]]
    assert [r[0] for r in rows] == [*expected, None]


def test_hashing_a_cast_date_matches_python_date_split(con):
    from mlpatterns.datasets import load_flights

    flights = load_flights()[["date", "carrier"]]
    flights.insert(0, "i", np.arange(len(flights)))
    con.register("flights", flights)
    sql = np.array(
        [
            r[0]
            for r in con.sql(
                "SELECT hash_bucket(CAST(date AS STRING), 10) FROM flights ORDER BY i"
            ).fetchall()
        ]
    )
    assert np.array_equal(sql, hash_bucket(flights["date"], 10))
    assert len(np.unique(sql)) == 10


def test_feature_cross_matches_cross_values(con):
    from mlpatterns.data.feature_cross import cross_values

    a = _random_strings(5_000, seed=1)
    b = _random_strings(5_000, seed=2)
    c = ["x", None, "z", ""] * 1_250
    con.register("crossed", pa.table({"i": np.arange(5_000), "a": a, "b": b, "c": c}))
    two = [r[0] for r in con.sql("SELECT feature_cross(a, b) FROM crossed ORDER BY i").fetchall()]
    three = [
        r[0] for r in con.sql("SELECT feature_cross(a, b, c) FROM crossed ORDER BY i").fetchall()
    ]
    assert two == cross_values(a, b).tolist()
    assert three == cross_values(a, b, c).tolist()
    assert con.sql("SELECT feature_cross('a', 'b', 'c', 'd')").fetchall() == [("a_b_c_d",)]


def test_bucketize_matches_python(con):
    bucketize_module = pytest.importorskip("mlpatterns.data.bucketize")
    rng = np.random.default_rng(3)
    values = np.round(rng.normal(0, 2, 5_000), 1)
    values[:4] = [-1.0, 0.0, 1.0, 2.5]  # exactly on split points
    points = [-1.0, 0.0, 1.0, 2.5]
    con.register("numbers", pd.DataFrame({"i": np.arange(len(values)), "x": values}))
    sql = [
        r[0]
        for r in con.sql(
            "SELECT bucketize(x, [-1.0, 0.0, 1.0, 2.5]) FROM numbers ORDER BY i"
        ).fetchall()
    ]
    assert sql == bucketize_module.bucketize(values, points).tolist()
    mixed = con.sql(
        "SELECT bucketize(x, p) FROM (VALUES (0.5, [0.0, 1.0]), (0.5, [1.0, 2.0]), (NULL, [1.0])) t(x, p)"
    ).fetchall()
    assert [r[0] for r in mixed] == [
        bucketize_module.bucketize([0.5], [0.0, 1.0])[0],
        bucketize_module.bucketize([0.5], [1.0, 2.0])[0],
        None,
    ]
    assert con.sql("SELECT bucketize(2.5, [1, 2, 3], true)").fetchall() == [("bin_2",)]


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ("SELECT farm_fingerprint(42)", duckdb.BinderException, r"farm_fingerprint\(VARCHAR\)"),
        ("SELECT farm_fingerprint(DATE '2013-01-01')", duckdb.BinderException, "farm_fingerprint"),
        ("SELECT hash_bucket('a', 2.5)", duckdb.BinderException, r"hash_bucket\(VARCHAR, BIGINT\)"),
        (
            "SELECT hash_bucket('a', 0)",
            duckdb.InvalidInputException,
            "num_buckets must be >= 1, got 0",
        ),
        ("SELECT hash_bucket_keras('a', -3)", duckdb.InvalidInputException, "hash_bucket_keras"),
        (
            "SELECT feature_cross(1, 2)",
            duckdb.BinderException,
            r"feature_cross_2\(VARCHAR, VARCHAR\)",
        ),
        ("SELECT feature_cross('a')", duckdb.BinderException, "feature_cross"),
        ("SELECT bucketize(1.0, [2.0, 1.0])", duckdb.InvalidInputException, "strictly increasing"),
        ("SELECT bucketize('a', [1.0])", duckdb.ConversionException, "'a' to DOUBLE"),
    ],
)
def test_wrong_arguments_give_clear_errors(con, query, error, message):
    with pytest.raises(error, match=message):
        con.sql(query).fetchall()


def test_register_is_idempotent_and_checks_its_argument():
    connection = duckdb.connect()
    assert register(register(connection)) is connection
    names = {
        r[0]
        for r in connection.sql("SELECT DISTINCT function_name FROM duckdb_functions()").fetchall()
    }
    assert set(FUNCTIONS) <= names
    with pytest.raises(TypeError, match="duckdb connection"):
        register("not a connection")
