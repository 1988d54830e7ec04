"""The DuckDB SQL functions agree row for row with the Python implementation."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlpatterns.hashing import fingerprint64, fingerprint64_column, hash_bucket, to_bigquery_strings
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
    from mlpatterns.data.bucketize import bucketize
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
    assert sql == bucketize(values, points).tolist()
    mixed = con.sql(
        "SELECT bucketize(x, p) FROM (VALUES (0.5, [0.0, 1.0]), (0.5, [1.0, 2.0]), (NULL, [1.0])) t(x, p)"
    ).fetchall()
    assert [r[0] for r in mixed] == [
        bucketize([0.5], [0.0, 1.0])[0],
        bucketize([0.5], [1.0, 2.0])[0],
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


# ------------------------------------------------- dates and times: SQL vs Python

TIMES_SQL = """
CREATE OR REPLACE TABLE times AS
SELECT i, ts, ts::DATE AS d, ts::TIMESTAMPTZ AS tz,
       make_timestamp_ns(CAST(hash(i) % 4000000000000000000 AS BIGINT) - 2000000000000000000) AS ns,
       (i - 500) / 8.0 AS x
FROM (
    SELECT i, TIMESTAMP '0001-01-01' + to_microseconds(
        CAST(hash(i) % 315537897600000000 AS BIGINT) // unit * unit) AS ts
    FROM (SELECT i, [1, 1000, 1000000, 86400000000][i % 4 + 1] AS unit FROM range(2000) r(i))
)
"""


@pytest.fixture(scope="module")
def times(con):
    con.execute("SET TimeZone = 'America/Los_Angeles'")  # TIMESTAMPTZ text must not depend on it
    con.execute(TIMES_SQL)
    con.execute(
        "INSERT INTO times VALUES (9000, TIMESTAMP '0999-03-04 05:06:07.12', DATE '0999-03-04', "
        "TIMESTAMPTZ '0999-03-04 05:06:07.12+00', NULL, 1.0), (9001, NULL, NULL, NULL, NULL, NULL)"
    )
    yield con
    con.execute("SET TimeZone = 'UTC'")


@pytest.mark.parametrize("column", ["ts", "d", "tz", "x"])
def test_bigquery_string_matches_python_row_for_row(times, column):
    sql_text = [r[0] for r in times.sql(f"SELECT bigquery_string({column}) FROM times ORDER BY i").fetchall()]
    sql_hash = [
        r[0] for r in times.sql(f"SELECT farm_fingerprint(bigquery_string({column})) FROM times ORDER BY i").fetchall()
    ]
    values = times.sql(f"SELECT {column} FROM times ORDER BY i")
    arrow = values.arrow()
    arrow = arrow.column(0) if isinstance(arrow, pa.Table) else arrow.read_all().column(0)
    python_objects = [r[0] for r in times.sql(f"SELECT {column} FROM times ORDER BY i").fetchall()]
    assert to_bigquery_strings(arrow).tolist() == sql_text
    assert to_bigquery_strings(python_objects).tolist() == sql_text
    assert [None if t is None else fingerprint64(t) for t in sql_text] == sql_hash
    assert _masked(sql_text, fingerprint64_column(python_objects, null_value=0)) == sql_hash
    assert sql_text[-1] is None and len(set(sql_text)) > 1000


def test_the_time_table_covers_every_fraction_width_and_early_years(times):
    texts = [r[0] for r in times.sql("SELECT bigquery_string(ts) FROM times WHERE ts IS NOT NULL").fetchall()]
    fractions = {len(t.split(".")[1]) if "." in t else 0 for t in texts}
    assert fractions == {0, 3, 6}
    assert sum(t < "1000" for t in texts) > 100
    assert "0999-03-04 05:06:07.120" in texts


def test_bigquery_string_of_pandas_datetime_columns_matches_python(con):
    frame = pd.DataFrame({
        "us": pd.Series(pd.to_datetime(["2013-01-01 05:00:00.12", "0999-03-04", "2013-01-01 05:00:00.000001"],
                                       format="mixed")).astype("datetime64[us]"),
        "aware": pd.Series(pd.to_datetime(["2013-01-01 05:00:00.1"] * 3)).dt.tz_localize("US/Eastern")
        .astype("datetime64[us, US/Eastern]"),
    })
    con.register("frame", frame)
    for column in frame:
        sql = [r[0] for r in con.sql(f"SELECT bigquery_string({column}) FROM frame").fetchall()]
        assert sql == to_bigquery_strings(frame[column]).tolist()
    assert sql[0] == "2013-01-01 10:00:00.100+00"


def test_nanosecond_timestamps_are_truncated_in_sql_as_in_python(times):
    # read back exactly (Arrow timestamp[ns]; fetchall's datetimes are already cut by DuckDB)
    table = times.sql("SELECT epoch_ns(ns) AS n, bigquery_string(ns) AS s FROM times WHERE ns IS NOT NULL ORDER BY i")
    nanos, texts = zip(*table.fetchall(), strict=True)
    floored = [np.datetime64(n // 1000, "us").item() for n in nanos]  # toward the past, before 1970 too
    assert list(texts) == to_bigquery_strings(floored).tolist()
    assert list(texts) == to_bigquery_strings(pa.array(nanos, pa.int64()).cast(pa.timestamp("ns"))).tolist()
    assert sum(n < 0 and n % 1000 for n in nanos) > 100
    one = times.sql("SELECT bigquery_string(TIMESTAMP_NS '2013-01-01 05:00:00.123456789')").fetchall()
    assert one == [("2013-01-01 05:00:00.123456",)]  # DuckDB's own cast to TIMESTAMP rounds to .123457


def test_duckdb_cast_to_varchar_differs_from_bigquery_for_fractions(con):
    # why bigquery_string exists: DuckDB trims zeros BigQuery keeps (ZetaSQL writes .100)
    row = con.sql(
        "SELECT CAST(TIMESTAMP '2015-01-28 00:00:00.1' AS VARCHAR), "
        "bigquery_string(TIMESTAMP '2015-01-28 00:00:00.1'), CAST(1.0::DOUBLE AS VARCHAR), "
        "bigquery_string(1.0::DOUBLE), bigquery_string(DATE '0999-03-04'), "
        "bigquery_string(18446744073709551615::UBIGINT), bigquery_string(true), bigquery_string(42)"
    ).fetchall()[0]
    assert row == (
        "2015-01-28 00:00:00.1", "2015-01-28 00:00:00.100", "1.0", "1", "0999-03-04",
        "18446744073709551615", "true", "42",
    )


@pytest.mark.parametrize(
    "literal", ["TIMESTAMP 'infinity'", "DATE '-0044-03-15'", "TIMESTAMP '10000-01-01'"]
)
def test_bigquery_string_refuses_values_outside_bigquery_range(con, literal):
    with pytest.raises(duckdb.InvalidInputException, match=r"bigquery_string\(x\): a (TIMESTAMP|DATE) value"):
        con.sql(f"SELECT bigquery_string({literal})").fetchall()


def test_bigquery_string_refuses_other_types_in_the_binder(con):
    with pytest.raises(duckdb.BinderException, match="bigquery_string"):
        con.sql("SELECT bigquery_string(TIME '05:00:00')").fetchall()
