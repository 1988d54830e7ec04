"""Repeatable Splitting (22) without pandas: rows of plain values get the buckets that
``key_buckets`` gives the frame of object columns built of them (as a server's batch path
builds it), for keys of every kind, composite keys and nulls."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlpatterns.reproducibility.repeatable_splitting import key_buckets, key_text
from mlpatterns.reproducibility.split_keys import row_key_buckets, row_key_text

BUCKETS = 10_000


def _frame(rows, columns) -> pd.DataFrame:
    """The frame ``mlpatterns serve``'s batch path builds (``_common.frame_of``): object columns, values as given."""
    return pd.DataFrame({c: pd.Series([row[c] for row in rows], dtype=object) for c in columns})


def _same(rows, columns, **options) -> np.ndarray:
    frame = _frame(rows, columns)
    expected = key_buckets(frame, columns, BUCKETS, **options)
    got = row_key_buckets(rows, columns, BUCKETS, **options)
    assert got.dtype == np.int64 and got.tolist() == expected.tolist()
    texts = key_text(frame, columns, separator=options.get("separator", ""))
    assert [row_key_text(row, columns, separator=options.get("separator", "")) for row in rows] == texts.tolist()
    return got


# JSON scalars (what a request can hold) and the odd floats
_SCALARS = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 3.0, 1e20, -1e-7, 0.1, 1e15, 1e16, 123456789012345678.0]),
    st.booleans(),
    st.text(),
    st.sampled_from(["", "é", "ß", "日本", "0", "1", "true", "3.0", "1e+20"]),
)
_VALUES = st.one_of(_SCALARS, st.none())
# a column of one kind (pandas casts each distinct value once) or of mixed kinds (row by row)
_COLUMN_KINDS = [st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.text(), _VALUES]


@st.composite
def _rows(draw, nulls: bool):
    width = draw(st.integers(1, 3))
    count = draw(st.integers(0, 12))
    columns = [f"k{i}" for i in range(width)]
    kinds = [draw(st.sampled_from(_COLUMN_KINDS)) for _ in columns]
    rows = []
    for _ in range(count):
        row = {c: draw(kind) for c, kind in zip(columns, kinds, strict=True)}
        if not nulls:
            row = {c: (0 if v is None else v) for c, v in row.items()}
        rows.append(row)
    return rows, columns


@settings(max_examples=300, deadline=None, database=None)
@given(_rows(nulls=False), st.sampled_from(["", "-", "|é|"]))
@example(([{"k0": 3}, {"k0": 3.0}, {"k0": True}, {"k0": 1}, {"k0": "3"}], ["k0"]), "")
@example(([{"k0": -0.0}, {"k0": 0.0}, {"k0": 0}, {"k0": False}], ["k0"]), "")
@example(([{"k0": 1e20}, {"k0": 10**20}, {"k0": 2**64 + 1}, {"k0": -(2**63)}], ["k0"]), "")
@example(([{"k0": "store-1-é", "k1": 7}, {"k0": "", "k1": 7.5}, {"k0": "a", "k1": True}], ["k0", "k1"]), "")
def test_rows_get_the_buckets_of_the_frame(data, separator):
    rows, columns = data
    buckets = _same(rows, columns, separator=separator)
    assert ((buckets >= 0) & (buckets < BUCKETS)).all()


@settings(max_examples=200, deadline=None, database=None)
@given(_rows(nulls=True))
@example(([{"k0": None, "k1": "a"}, {"k0": 1, "k1": None}, {"k0": 1, "k1": "a"}], ["k0", "k1"]))
@example(([{"k0": float("nan")}, {"k0": 2}], ["k0"]))
def test_null_keys_are_excluded_or_refused_alike(data):
    rows, columns = data
    _same(rows, columns, nulls="exclude")
    frame = _frame(rows, columns)
    try:
        key_buckets(frame, columns, BUCKETS)
    except ValueError as error:
        with pytest.raises(ValueError) as raised:
            row_key_buckets(rows, columns, BUCKETS)
        assert str(raised.value) == str(error)
    else:
        assert row_key_buckets(rows, columns, BUCKETS).tolist() == key_buckets(frame, columns, BUCKETS).tolist()


def test_known_buckets_and_argument_errors():
    assert row_key_buckets([{"k": "a"}, {"k": "b"}], "k", 10).tolist() == [7, 4]  # key_buckets' own doctest
    assert row_key_buckets([], ["k"], 10).tolist() == []
    with pytest.raises(ValueError, match="at least one column"):
        row_key_buckets([{"k": 1}], [], 10)
    with pytest.raises(ValueError, match="nulls must be"):
        row_key_buckets([{"k": 1}], "k", 10, nulls="keep")
    with pytest.raises(KeyError):
        row_key_buckets([{"k": 1}], "other", 10)
    numpy_values = [{"k": np.int64(7)}, {"k": np.float32(0.1)}, {"k": np.bool_(True)}, {"k": np.float64(2.5)}]
    assert row_key_buckets(numpy_values, "k", BUCKETS).tolist() == \
        key_buckets(_frame(numpy_values, ["k"]), "k", BUCKETS).tolist()


def test_the_row_functions_import_no_pandas():
    script = (
        "import sys\n"
        "from mlpatterns.reproducibility.split_keys import row_key_buckets\n"
        "assert row_key_buckets([{'a': 1, 'b': 'x'}, {'a': 2.5, 'b': True}], ['a', 'b'], 100).shape == (2,)\n"
        "heavy = [m for m in ('pandas', 'sklearn', 'pyarrow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
