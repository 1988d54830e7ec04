"""Tests of :mod:`mlpatterns.hashing`.

Two kinds of evidence: published values (BigQuery and Redshift docs, TensorFlow and
Keras docs, the book's notebook), then properties checked against the reference
binding ``farmhash.fingerprint64`` on tens of thousands of seeded random strings, for
every kind of column the module accepts. ``hypothesis`` is not a dependency, so the
random inputs come from a seeded NumPy generator and every run sees the same inputs.
"""

from __future__ import annotations

import datetime as dt
import decimal

import farmhash
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlpatterns import hashing
from mlpatterns.hashing import (
    BUCKET_CONVENTIONS,
    bucket_from_fingerprint,
    fingerprint64,
    fingerprint64_column,
    hash_bucket,
    is_null,
    to_bigquery_string,
    to_bigquery_strings,
)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
CHUNK = hashing._CHUNK_ROWS


# --------------------------------------------------------------------------- oracles


def oracle_fingerprint(text: str | bytes) -> int:
    """FARM_FINGERPRINT as BigQuery returns it: pyfarmhash's uint64 read as signed."""
    unsigned = farmhash.fingerprint64(text)
    return unsigned - 2**64 if unsigned > INT64_MAX else unsigned


def oracle_bucket(fingerprint: int, n: int, convention: str) -> int:
    """Both bucket formulas in exact Python integers."""
    if convention == "bigquery":
        return abs(fingerprint) % n  # ABS(MOD(f, n)); MOD keeps the sign of f
    return (fingerprint % 2**64) % n  # uint64(f) % n


def _g_layout(negative: bool, digits: str, exponent: int, precision: int) -> str:
    """C's %g layout of the decimal ``0.d1d2... * 10**(exponent + 1)``, built by hand."""
    digits = digits.rstrip("0") or "0"
    if -4 <= exponent < precision:
        if exponent >= 0:
            whole, fraction = digits[: exponent + 1].ljust(exponent + 1, "0"), digits[exponent + 1 :]
        else:
            whole, fraction = "0", "0" * (-exponent - 1) + digits
        text = whole + ("." + fraction if fraction else "")
    else:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        text = f"{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return ("-" if negative else "") + text


def independent_double_to_string(value: float) -> str:
    """ZetaSQL's RoundTripDoubleToString (15 digits, 17 if 15 do not round-trip), by another route.

    The code under test formats with Python's printf-style ``%g``. This oracle takes
    its digits from NumPy's Dragon4 (``format_float_scientific`` with fixed precision),
    checks the round trip on those digits, and lays the text out by hand.
    """
    if value == 0:
        return "0"
    if np.isinf(value):
        return "inf" if value > 0 else "-inf"
    for precision in (15, 17):
        scientific = np.format_float_scientific(abs(value), precision=precision - 1, unique=False)
        if precision == 17 or float(scientific) == abs(value):
            mantissa, exponent_text = scientific.split("e")
            return _g_layout(value < 0, mantissa.replace(".", ""), int(exponent_text), precision)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------ published values

# BigQuery hash functions docs, FARM_FINGERPRINT example:
# FARM_FINGERPRINT(CONCAT(CAST(x AS STRING), y, CAST(z AS STRING))).
BIGQUERY_DOC_ROWS = [
    (1, "foo", True, -1541654101129638711),
    (2, "apple", False, 2794438866806483259),
    (3, "", True, -4880158226897771312),
]


@pytest.mark.parametrize(("x", "y", "z", "expected"), BIGQUERY_DOC_ROWS)
def test_bigquery_docs_row_fingerprint(x, y, z, expected):
    text = to_bigquery_string(x) + y + to_bigquery_string(z)
    assert fingerprint64(text) == expected


def test_bigquery_docs_row_fingerprint_as_columns():
    xs, ys, zs, expected = zip(*BIGQUERY_DOC_ROWS, strict=True)
    text = [
        a + b + c
        for a, b, c in zip(
            to_bigquery_strings(list(xs)), ys, to_bigquery_strings(list(zs)), strict=True
        )
    ]
    assert fingerprint64_column(text).tolist() == list(expected)
    assert fingerprint64_column(pa.array(text)).tolist() == list(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alphabet", -2427165924636348523),  # FARM_FINGERPRINT("alphabet"), Guava, pyfarmhash
        (b"alphabet", -2427165924636348523),
        ("Amazon Redshift", 8085098817162212970),  # Redshift farmFingerprint64 docs
        (b"Amazon Redshift", 8085098817162212970),  # ... as VARBYTE
    ],
)
def test_published_fingerprints(value, expected):
    assert fingerprint64(value) == expected
    assert fingerprint64_column([value]).tolist() == [expected]


def test_tf_strings_to_hash_bucket_fast_docs_example():
    # tf.strings.to_hash_bucket_fast(["Hello", "TensorFlow", "2.x"], 3) -> [0, 2, 2]
    assert hash_bucket(["Hello", "TensorFlow", "2.x"], 3, convention="keras").tolist() == [0, 2, 2]


def test_keras_hashing_docs_example():
    # keras.layers.Hashing(num_bins=3) on [['A'], ['B'], ['C'], ['D'], ['E']]
    got = hash_bucket(["A", "B", "C", "D", "E"], 3, convention="keras")
    assert got.tolist() == [1, 0, 1, 1, 2]


def test_keras_hashing_mask_value_docs_example():
    # keras.layers.Hashing(num_bins=3, mask_value='') on ['A', 'B', '', 'C', 'D'] gives
    # [1, 1, 0, 2, 2]: the mask takes bin 0, the rest go to 1 + hash % (num_bins - 1).
    values = ["A", "B", "", "C", "D"]
    shifted = hash_bucket(values, 2, convention="keras") + 1
    got = np.where(np.array(values, dtype=object) == "", 0, shifted)
    assert got.tolist() == [1, 1, 0, 2, 2]


# GoogleCloudPlatform/ml-design-patterns, 02_data_representation/hashed_feature.ipynb:
# ABS(MOD(FARM_FINGERPRINT(departure_airport), n)) for n = 3, 10, 1000 on BigQuery.
BOOK_AIRPORTS = {
    "SJU": (2, 1, 81),
    "PVD": (1, 7, 667),
    "MSY": (1, 1, 991),
    "MHT": (2, 7, 507),
    "CHS": (1, 2, 432),
    "CPR": (2, 6, 306),
    "PHX": (0, 3, 743),
    "SFO": (0, 4, 714),
    "SNA": (2, 7, 587),
    "SAN": (0, 7, 447),
}


@pytest.mark.parametrize(("column", "num_buckets"), [(0, 3), (1, 10), (2, 1000)])
def test_book_notebook_airport_buckets(column, num_buckets):
    airports = list(BOOK_AIRPORTS)
    expected = [BOOK_AIRPORTS[a][column] for a in airports]
    assert hash_bucket(airports, num_buckets).tolist() == expected
    assert hash_bucket(pd.Series(airports), num_buckets, convention="bigquery").tolist() == expected


def test_book_notebook_airports_sharing_a_bucket_with_ord():
    # the notebook's query returns ORD, BTV and MCI for hashed(x, 100) = hashed('ORD', 100)
    buckets = hash_bucket(["ORD", "BTV", "MCI"], 100)
    assert len(set(buckets.tolist())) == 1


# ------------------------------------------------------------------ random corpus

ASCII = np.array([chr(c) for c in range(32, 127)] + ["\t", "\n"])
UNICODE = np.array(
    [chr(c) for c in range(32, 127)]
    + [chr(c) for c in range(0xA0, 0x180)]  # Latin-1, Latin Extended-A (2 bytes)
    + [chr(c) for c in range(0x391, 0x3CA)]  # Greek
    + [chr(c) for c in range(0x410, 0x450)]  # Cyrillic
    + [chr(c) for c in range(0x4E00, 0x4E80)]  # CJK (3 bytes)
    + [chr(c) for c in range(0x1F600, 0x1F650)]  # emoji (4 bytes)
    + [chr(c) for c in range(0x1F680, 0x1F6C0)]
    + ["\u0301", "\u200d", "\ufeff", "\uffff", "\U0010ffff", "\x00", "\x7f"]
)


def _random_strings(
    rng: np.random.Generator, alphabet: np.ndarray, lengths: np.ndarray
) -> list[str]:
    chars = rng.choice(alphabet, size=int(lengths.sum()))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return ["".join(chars[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _lengths(rng: np.random.Generator, count: int) -> np.ndarray:
    """Lengths spread over FarmHash's branches: 0-16, 17-32, 33-64, 65-256, long."""
    spans = [(0, 17), (17, 33), (33, 65), (65, 257), (257, 3000)]
    weights = [0.35, 0.2, 0.2, 0.2, 0.05]
    pick = rng.choice(len(spans), size=count, p=weights)
    lows = np.array([s[0] for s in spans])[pick]
    highs = np.array([s[1] for s in spans])[pick]
    return rng.integers(lows, highs)


def _build_corpus() -> list[str]:
    rng = np.random.default_rng(20240601)
    every_length = ["x" * n for n in range(301)]  # every byte length through 300
    every_length += ["é" * n for n in range(80)]  # two bytes per character
    every_length += ["😀" * n for n in range(40)]  # four bytes per character
    ascii_strings = _random_strings(rng, ASCII, _lengths(rng, 15_000))
    unicode_strings = _random_strings(rng, UNICODE, _lengths(rng, 15_000))
    specials = ["", " ", "\x00", "a\x00b", "a\x00", "NULL", "None", "nan", "true", "0", "-0"]
    specials += ["👨‍👩‍👧‍👦", "e\u0301", "\u00e9", "ﬁ", "ß", "İ"]  # ZWJ, combining, NFC/NFD
    return every_length + ascii_strings + unicode_strings + specials


CORPUS = _build_corpus()
CORPUS_FP = np.array([oracle_fingerprint(s) for s in CORPUS], dtype=np.int64)
# NumPy fixed-width 'U'/'S' arrays drop trailing NULs, so they get the strings without one,
# and only strings up to 300 characters (every row takes the width of the longest one).
CORPUS_NO_TRAILING_NUL = [s for s in CORPUS if not s.endswith("\x00") and len(s) <= 300]
CORPUS_NO_TRAILING_NUL_FP = np.array(
    [oracle_fingerprint(s) for s in CORPUS_NO_TRAILING_NUL], dtype=np.int64
)


def test_corpus_covers_every_farmhash_length_branch():
    byte_lengths = np.array([len(s.encode()) for s in CORPUS])
    for low, high in [(0, 0), (1, 16), (17, 32), (33, 64), (65, 10**6)]:
        assert ((byte_lengths >= low) & (byte_lengths <= high)).sum() >= 300
    assert (byte_lengths > 4096).any()
    assert len(CORPUS) > 30_000


def _as_bytes(strings):
    return [s.encode("utf-8") for s in strings]


def _chunked(array: pa.Array) -> pa.ChunkedArray:
    cuts = [0, 1, 1, 777, CHUNK + 5, len(array)]
    return pa.chunked_array(
        [array[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)], type=array.type
    )


TEXT_CONTAINERS = {
    "list": lambda s: list(s),
    "tuple": lambda s: tuple(s),
    "numpy-object": lambda s: np.array(s, dtype=object),
    "pandas-object": lambda s: pd.Series(s, dtype=object),
    "pandas-default-str": lambda s: pd.Series(s),
    "pandas-str-python": lambda s: pd.Series(s, dtype=pd.StringDtype("python")),
    "pandas-str-pyarrow": lambda s: pd.Series(s, dtype=pd.StringDtype("pyarrow")),
    "pandas-arrow-string": lambda s: pd.Series(s, dtype=pd.ArrowDtype(pa.string())),
    "pandas-index": lambda s: pd.Index(s, dtype=object),
    "pandas-categorical": lambda s: pd.Series(s, dtype="category"),
    "arrow-string": lambda s: pa.array(s, pa.string()),
    "arrow-large-string": lambda s: pa.array(s, pa.large_string()),
    "arrow-dictionary": lambda s: pa.array(s, pa.string()).dictionary_encode(),
    "arrow-chunked": lambda s: _chunked(pa.array(s, pa.string())),
    "arrow-binary": lambda s: pa.array(_as_bytes(s), pa.binary()),
    "arrow-large-binary": lambda s: pa.array(_as_bytes(s), pa.large_binary()),
    "bytes-list": lambda s: _as_bytes(s),
}
if hasattr(pa, "string_view"):  # pyarrow >= 16
    TEXT_CONTAINERS["arrow-string-view"] = lambda s: pa.array(s, pa.string_view())
FIXED_WIDTH_CONTAINERS = {
    "numpy-U": lambda s: np.array(s, dtype=str),
    "numpy-S": lambda s: np.array(_as_bytes(s), dtype=bytes),
}


def _oracle_buckets(fingerprints: np.ndarray) -> dict[tuple[str, int], np.ndarray]:
    return {
        (convention, n): np.array([oracle_bucket(int(f), n, convention) for f in fingerprints])
        for convention in BUCKET_CONVENTIONS
        for n in (1000, 7)
    }


CORPUS_BUCKETS = _oracle_buckets(CORPUS_FP)
CORPUS_NO_TRAILING_NUL_BUCKETS = _oracle_buckets(CORPUS_NO_TRAILING_NUL_FP)


def _check_against_oracle(column, expected_fp: np.ndarray, expected_buckets: dict) -> None:
    got = fingerprint64_column(column)
    assert got.dtype == np.int64
    assert got.shape == expected_fp.shape
    mismatches = np.flatnonzero(got != expected_fp)
    assert mismatches.size == 0, f"{mismatches.size} fingerprints differ, first at {mismatches[:5]}"
    for (convention, n), expected in expected_buckets.items():
        got = hash_bucket(column, n, convention=convention)
        assert np.array_equal(got, expected), (convention, n)


@pytest.mark.parametrize("container", list(TEXT_CONTAINERS))
def test_every_text_container_matches_pyfarmhash(container):
    _check_against_oracle(TEXT_CONTAINERS[container](CORPUS), CORPUS_FP, CORPUS_BUCKETS)


@pytest.mark.parametrize("container", list(FIXED_WIDTH_CONTAINERS))
def test_fixed_width_numpy_arrays_match_pyfarmhash(container):
    column = FIXED_WIDTH_CONTAINERS[container](CORPUS_NO_TRAILING_NUL)
    _check_against_oracle(column, CORPUS_NO_TRAILING_NUL_FP, CORPUS_NO_TRAILING_NUL_BUCKETS)


def test_scalar_matches_column_and_pyfarmhash():
    sample = CORPUS[::50]
    assert [fingerprint64(s) for s in sample] == [oracle_fingerprint(s) for s in sample]
    assert [fingerprint64(s.encode()) for s in sample] == [oracle_fingerprint(s) for s in sample]
    assert fingerprint64_column(sample).tolist() == [fingerprint64(s) for s in sample]


def test_str_is_hashed_as_its_utf8_bytes():
    for text in ["é", "😀", "e\u0301", "中文", "\x00"]:
        assert fingerprint64(text) == fingerprint64(text.encode("utf-8"))
    # NFC and NFD spellings are different bytes, so different fingerprints, as in BigQuery
    assert fingerprint64("\u00e9") != fingerprint64("e\u0301")


def test_numpy_str_and_bytes_scalars():
    assert fingerprint64(np.str_("alphabet")) == -2427165924636348523
    assert fingerprint64(np.bytes_(b"alphabet")) == -2427165924636348523


def test_lone_surrogate_is_not_valid_utf8():
    with pytest.raises(UnicodeEncodeError):
        fingerprint64_column(["ok", "\ud800"])


def test_empty_column():
    for column in (
        [],
        np.array([], dtype=object),
        pa.array([], pa.string()),
        pd.Series([], dtype=str),
    ):
        assert fingerprint64_column(column).tolist() == []
        assert hash_bucket(column, 10).dtype == np.int64
    assert fingerprint64_column(pa.chunked_array([], pa.string())).shape == (0,)


def test_series_index_is_ignored():
    series = pd.Series(["b", "a", "c"], index=[10, 3, 7])
    assert hash_bucket(series, 1000).tolist() == hash_bucket(["b", "a", "c"], 1000).tolist()


def test_generator_input():
    assert fingerprint64_column(s for s in ["a", "b"]).tolist() == [
        oracle_fingerprint("a"),
        oracle_fingerprint("b"),
    ]


def test_hash_bucket_equals_bucket_of_fingerprints():
    column = CORPUS[:2000]
    fps = fingerprint64_column(column)
    for convention in BUCKET_CONVENTIONS:
        for n in (1, 2, 3, 100, 2**31 - 1, 2**40 + 15):
            assert np.array_equal(
                hash_bucket(column, n, convention=convention),
                bucket_from_fingerprint(fps, n, convention),
            )


# -------------------------------------------------------------------- conventions


def test_default_convention_is_bigquery():
    column = CORPUS[:1000]
    assert np.array_equal(hash_bucket(column, 97), hash_bucket(column, 97, convention="bigquery"))
    assert np.array_equal(
        bucket_from_fingerprint(CORPUS_FP, 97), bucket_from_fingerprint(CORPUS_FP, 97, "bigquery")
    )


@pytest.mark.parametrize("n", [3, 10, 1000, 2**31 - 1])
def test_conventions_agree_for_non_negative_and_differ_for_negative(n):
    bigquery = bucket_from_fingerprint(CORPUS_FP, n, "bigquery")
    keras = bucket_from_fingerprint(CORPUS_FP, n, "keras")
    non_negative = CORPUS_FP >= 0
    assert 0.4 < non_negative.mean() < 0.6  # half of all fingerprints are negative
    assert np.array_equal(bigquery[non_negative], keras[non_negative])
    negative = CORPUS_FP[~non_negative]
    assert np.array_equal(bigquery[~non_negative], np.abs(negative) % n)
    expected_keras = [(int(f) + 2**64) % n for f in negative]
    assert keras[~non_negative].tolist() == expected_keras
    assert (bigquery[~non_negative] != keras[~non_negative]).any()


EXTREME_FINGERPRINTS = [
    INT64_MIN,
    INT64_MIN + 1,
    -(2**62),
    -2,
    -1,
    0,
    1,
    2**62,
    INT64_MAX - 1,
    INT64_MAX,
]
EXTREME_BUCKETS = [
    1,
    2,
    3,
    7,
    10,
    1000,
    2**31 - 1,
    2**32,
    2**32 + 1,
    2**62 + 3,
    INT64_MAX,
    2**63,
    2**64 - 1,
]


@pytest.mark.parametrize("convention", BUCKET_CONVENTIONS)
@pytest.mark.parametrize("n", EXTREME_BUCKETS)
def test_bucket_from_fingerprint_at_int64_extremes(convention, n):
    got = bucket_from_fingerprint(np.array(EXTREME_FINGERPRINTS, dtype=np.int64), n, convention)
    assert got.dtype == np.int64
    expected = [oracle_bucket(f, n, convention) for f in EXTREME_FINGERPRINTS]
    # buckets >= 2**63 cannot be int64; they exist only for num_buckets > 2**63
    assert (got.view(np.uint64) if n > 2**63 else got).tolist() == expected


def test_conventions_always_agree_for_two_buckets():
    # 2**64 is even, so uint64(f) and |f| have the same parity
    assert np.array_equal(
        bucket_from_fingerprint(CORPUS_FP, 2, "bigquery"),
        bucket_from_fingerprint(CORPUS_FP, 2, "keras"),
    )


def test_int64_min_magnitude_is_two_to_the_63():
    # ABS(MOD(INT64_MIN, n)) == 2**63 % n; np.abs(INT64_MIN) wraps to INT64_MIN
    for n in (3, 10, 1000, 12345):
        assert bucket_from_fingerprint([INT64_MIN], n, "bigquery").tolist() == [2**63 % n]
        assert bucket_from_fingerprint([INT64_MIN], n, "keras").tolist() == [2**63 % n]
        assert bucket_from_fingerprint([-1], n, "bigquery").tolist() == [1 % n]
        assert bucket_from_fingerprint([-1], n, "keras").tolist() == [(2**64 - 1) % n]


def test_bucket_from_fingerprint_accepts_lists_and_other_int_dtypes():
    assert bucket_from_fingerprint([5, -5], 3).tolist() == [2, 2]
    assert bucket_from_fingerprint(np.array([5, -5], dtype=np.int32), 3, "keras").tolist() == [
        2,
        (2**64 - 5) % 3,
    ]


def test_single_bucket_is_all_zeros():
    assert hash_bucket(CORPUS[:100], 1).tolist() == [0] * 100
    assert hash_bucket(CORPUS[:100], 1, convention="keras").tolist() == [0] * 100


def test_buckets_are_roughly_uniform():
    distinct = sorted(set(CORPUS))
    counts = np.bincount(hash_bucket(distinct, 10), minlength=10)
    expected = len(distinct) / 10
    assert (np.abs(counts - expected) < 5 * np.sqrt(expected)).all()


def test_numpy_integer_num_buckets():
    assert hash_bucket(["a", "b"], np.int64(7)).tolist() == hash_bucket(["a", "b"], 7).tolist()
    assert hash_bucket(["a", "b"], np.uint8(7)).tolist() == hash_bucket(["a", "b"], 7).tolist()


# ------------------------------------------------------------------------ casting


INTS = [0, 1, -1, 7, -12, 10**15, 2**53 + 1, INT64_MAX, INT64_MIN]


@pytest.mark.parametrize(
    "make",
    [
        list,
        lambda v: np.array(v, dtype=np.int64),
        lambda v: pd.Series(v, dtype="int64"),
        lambda v: pd.Series(v, dtype="Int64"),
        lambda v: pd.Series(v, dtype=pd.ArrowDtype(pa.int64())),
        lambda v: pa.array(v, pa.int64()),
    ],
    ids=[
        "list",
        "numpy-int64",
        "pandas-int64",
        "pandas-Int64",
        "pandas-arrow-int64",
        "arrow-int64",
    ],
)
def test_integers_hash_as_their_decimal_digits(make):
    column = make(INTS)
    assert to_bigquery_strings(column).tolist() == [str(i) for i in INTS]
    assert fingerprint64_column(column).tolist() == [oracle_fingerprint(str(i)) for i in INTS]


def test_small_and_unsigned_integer_dtypes():
    for dtype in (np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32, np.uint64):
        values = np.array([0, 1, 100], dtype=dtype)
        assert to_bigquery_strings(values).tolist() == ["0", "1", "100"]
    assert to_bigquery_string(np.uint64(2**64 - 1)) == "18446744073709551615"
    assert to_bigquery_strings(pa.array([2**64 - 1], pa.uint64())).tolist() == [str(2**64 - 1)]


def test_integers_hash_like_keras_casts_them():
    # keras.layers.Hashing casts integer input with tf.strings.as_string (decimal digits)
    ints = list(range(-500, 500))
    assert np.array_equal(
        hash_bucket(ints, 13, convention="keras"),
        hash_bucket([str(i) for i in ints], 13, convention="keras"),
    )


@pytest.mark.parametrize(
    "column",
    [
        [True, False],
        np.array([True, False]),
        pd.Series([True, False]),
        pd.Series([True, False], dtype="boolean"),
        pa.array([True, False]),
        [np.bool_(True), np.bool_(False)],
    ],
    ids=["list", "numpy", "pandas-bool", "pandas-boolean", "arrow", "numpy-scalars"],
)
def test_booleans_hash_as_true_false(column):
    # BigQuery CAST(true AS STRING) = "true"; the docs example hashes "1footrue"
    assert to_bigquery_strings(column).tolist() == ["true", "false"]
    assert fingerprint64_column(column).tolist() == [
        oracle_fingerprint("true"),
        oracle_fingerprint("false"),
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (-3.0, "-3"),
        (0.0, "0"),
        (-0.0, "0"),  # BigQuery does not sign a zero
        (0.1, "0.1"),
        (2.5, "2.5"),
        (0.30000000000000004, "0.30000000000000004"),
        (1e-05, "1e-05"),
        (0.0001, "0.0001"),
        (123456789012345.0, "123456789012345"),
        (1e16, "1e+16"),
        (1e20, "1e+20"),
        (-1.5e300, "-1.5e+300"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (np.float32(0.5), "0.5"),
    ],
)
def test_float_cast_examples(value, text):
    assert to_bigquery_string(value) == text
    assert to_bigquery_strings(np.array([value])).tolist() == [text]
    assert fingerprint64(value) == oracle_fingerprint(text)


def test_floats_cast_like_an_independent_implementation():
    # short decimals (1 to 15 digits), full-precision doubles (16-17 digits) and powers
    # of ten at the %g layout boundaries (1e-5 / 1e-4, 1e14 / 1e15 / 1e16)
    rng = np.random.default_rng(7)
    raw = rng.standard_normal(3000) * 10.0 ** rng.integers(-30, 30, 3000)
    values = [float(f"{v:.{digits}g}") for v in raw for digits in (1, 4, 9, 15)]
    values += raw.tolist() + [10.0**k for k in range(-8, 20)] + [-(10.0**k) for k in range(-8, 20)]
    values += [1e15, 1234567890123456.0, 2.0**53 + 2, 5e-324, 1.7976931348623157e308, 0.1 + 0.2]
    got = to_bigquery_strings(np.array(values)).tolist()
    expected = [independent_double_to_string(v) for v in values]
    mismatches = [(v, g, e) for v, g, e in zip(values, got, expected, strict=True) if g != e]
    assert not mismatches, mismatches[:5]
    assert sum(len(e.replace("-", "").split("e")[0].replace(".", "").lstrip("0")) == 17 for e in expected) > 500


def test_the_independent_float_oracle_is_not_vacuous():
    # it must tell 15 from 17 digits and fixed from exponent layout, like the code
    assert independent_double_to_string(0.1 + 0.2) == "0.30000000000000004"
    assert independent_double_to_string(1e15) == "1e+15"
    assert independent_double_to_string(123456789012345.0) == "123456789012345"
    assert independent_double_to_string(0.0001) == "0.0001"
    assert independent_double_to_string(1e-05) == "1e-05"
    assert independent_double_to_string(-2.5) == "-2.5"


def test_dates():
    for column in (
        [dt.date(2013, 1, 1), dt.date(1, 1, 1), dt.date(9999, 12, 31)],
        np.array(["2013-01-01", "0001-01-01", "9999-12-31"], dtype="datetime64[D]"),
        pa.array([dt.date(2013, 1, 1), dt.date(1, 1, 1), dt.date(9999, 12, 31)], pa.date32()),
    ):
        assert to_bigquery_strings(column).tolist() == ["2013-01-01", "0001-01-01", "9999-12-31"]
    assert fingerprint64(dt.date(2013, 1, 1)) == oracle_fingerprint("2013-01-01")


def test_arrow_date64_is_a_date():
    column = pa.array([dt.date(2013, 1, 1)], pa.date64())
    assert to_bigquery_strings(column).tolist() == ["2013-01-01"]


def test_naive_datetimes_are_bigquery_datetimes():
    values = [dt.datetime(2013, 1, 1, 5), dt.datetime(2013, 1, 1, 5, 6, 7, 123456)]
    expected = ["2013-01-01 05:00:00", "2013-01-01 05:06:07.123456"]
    for column in (
        values,
        np.array(values, dtype="datetime64[us]"),
        pd.Series(pd.to_datetime(values)),
        [pd.Timestamp(v) for v in values],
        pa.array(values, pa.timestamp("us")),
    ):
        assert to_bigquery_strings(column).tolist() == expected
    assert to_bigquery_strings(
        np.array(["2013-01-01T05:00:00"], dtype="datetime64[s]")
    ).tolist() == ["2013-01-01 05:00:00"]
    assert fingerprint64(values[0]) == oracle_fingerprint(expected[0])


def test_aware_datetimes_are_bigquery_timestamps_in_utc():
    pacific = dt.timezone(dt.timedelta(hours=-8))
    value = dt.datetime(2013, 1, 1, 5, tzinfo=pacific)
    assert to_bigquery_string(value) == "2013-01-01 13:00:00+00"
    assert to_bigquery_string(dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)) == "2013-01-01 05:00:00+00"
    series = pd.Series(pd.to_datetime(["2013-01-01 05:00:00"]).tz_localize("US/Eastern"))
    assert to_bigquery_strings(series).tolist() == ["2013-01-01 10:00:00+00"]


def test_datetime_with_whole_milliseconds():
    assert to_bigquery_string(dt.datetime(2013, 1, 1, 5, 0, 0, 123000)) == "2013-01-01 05:00:00.123"
    aware = dt.datetime(2013, 1, 1, 5, 0, 0, 1000, tzinfo=dt.UTC)
    assert to_bigquery_string(aware) == "2013-01-01 05:00:00.001+00"


# ZetaSQL compliance tests (google/zetasql, zetasql/compliance/testdata/civil_time.test,
# roundtrip_cast_between_string_and_datetime_common): CAST(DATETIME AS STRING).
ZETASQL_DATETIME_STRINGS = [
    (dt.datetime(1, 1, 1), "0001-01-01 00:00:00"),
    (dt.datetime(9999, 12, 31, 23, 59, 59, 999999), "9999-12-31 23:59:59.999999"),
    (dt.datetime(2006, 1, 2), "2006-01-02 00:00:00"),
    (dt.datetime(2006, 1, 2, 1, 2, 3, 123456), "2006-01-02 01:02:03.123456"),
    (dt.datetime(2006, 1, 2, 1, 2, 3, 123450), "2006-01-02 01:02:03.123450"),
    (dt.datetime(2006, 1, 2, 1, 2, 3, 120000), "2006-01-02 01:02:03.120"),
]
# timestamp.test (Table2, timestamp_to_string_2/3): CAST(TIMESTAMP AS STRING) pads a
# fraction to 3 or 6 digits; BigQuery's default time zone is UTC, hence "+00".
ZETASQL_TIMESTAMP_FRACTIONS = [
    (0, ""), (1, ".000001"), (10, ".000010"), (100, ".000100"),
    (1000, ".001"), (10000, ".010"), (100000, ".100"),
]


@pytest.mark.parametrize(("value", "text"), ZETASQL_DATETIME_STRINGS)
def test_datetimes_cast_like_zetasql_compliance_tests(value, text):
    assert to_bigquery_string(value) == text
    assert to_bigquery_string(pd.Timestamp(value)) == text
    assert to_bigquery_string(np.datetime64(value, "us")) == text
    for column in (
        [value],
        np.array([value], dtype="datetime64[us]"),
        pd.Series([value], dtype="datetime64[us]"),
        pa.array([value], pa.timestamp("us")),
    ):
        assert to_bigquery_strings(column).tolist() == [text]
    assert fingerprint64(value) == oracle_fingerprint(text)


@pytest.mark.parametrize(("micros", "fraction"), ZETASQL_TIMESTAMP_FRACTIONS)
def test_timestamps_cast_like_zetasql_compliance_tests(micros, fraction):
    pacific = dt.timezone(dt.timedelta(hours=-8))
    instant = dt.datetime(2015, 1, 28, 0, 0, 0, micros, tzinfo=pacific)
    text = f"2015-01-28 08:00:00{fraction}+00"
    assert to_bigquery_string(instant) == text
    assert to_bigquery_strings(pd.Series([instant]).dt.tz_convert("UTC")).tolist() == [text]
    assert to_bigquery_strings(pa.array([instant], pa.timestamp("us", tz="UTC"))).tolist() == [text]
    # a DATETIME writes its fraction the same way, without the zone
    assert to_bigquery_string(instant.replace(tzinfo=None)) == text[:-3].replace("08:", "00:", 1)


@pytest.mark.parametrize("year", [1, 9, 10, 99, 100, 999])
def test_years_before_1000_have_four_digits(year):
    date, when = dt.date(year, 3, 4), dt.datetime(year, 3, 4, 5, 6, 7, 120000)
    expected_date, expected_datetime = f"{year:04d}-03-04", f"{year:04d}-03-04 05:06:07.120"
    assert to_bigquery_string(date) == expected_date
    assert to_bigquery_string(np.datetime64(date)) == expected_date
    assert to_bigquery_string(when) == expected_datetime
    assert to_bigquery_string(when.replace(tzinfo=dt.UTC)) == expected_datetime + "+00"
    assert to_bigquery_string(np.datetime64(when, "ms")) == expected_datetime
    assert to_bigquery_strings(np.array([when], dtype="datetime64[us]")).tolist() == [expected_datetime]
    assert to_bigquery_strings(pd.Series([when], dtype="datetime64[us]")).tolist() == [expected_datetime]
    assert to_bigquery_strings(pa.array([date], pa.date32())).tolist() == [expected_date]


def test_numpy_date_scalars_are_dates_like_date_columns():
    assert to_bigquery_string(np.datetime64("2013-01-01")) == "2013-01-01"
    assert to_bigquery_string(np.datetime64("2013-01-01")) == to_bigquery_strings(
        np.array(["2013-01-01"], dtype="datetime64[D]")
    )[0]


@pytest.mark.parametrize("ns", [0, 1, 999, 123456789, -1, -999_999_999])
def test_nanoseconds_are_truncated_the_same_way_in_every_container(ns):
    value = np.datetime64("2013-01-01T05:00:00", "ns") + np.timedelta64(ns, "ns")
    micros = np.floor_divide(value.astype(np.int64), 1000)  # truncation toward the past
    expected = to_bigquery_string(np.datetime64(int(micros), "us").item())
    assert to_bigquery_string(value) == expected
    assert to_bigquery_string(pd.Timestamp(value)) == expected
    assert to_bigquery_strings(np.array([value])).tolist() == [expected]
    assert to_bigquery_strings(pd.Series([value])).tolist() == [expected]
    assert to_bigquery_strings(pa.array([value], pa.timestamp("ns"))).tolist() == [expected]


def test_numpy_nanosecond_datetimes():
    column = np.array(["2013-01-01T05:00:00"], dtype="datetime64[ns]")
    assert to_bigquery_strings(column).tolist() == ["2013-01-01 05:00:00"]


def test_arrow_nanosecond_timestamps():
    column = pa.array([dt.datetime(2013, 1, 1, 5)], pa.timestamp("ns"))
    assert to_bigquery_strings(column).tolist() == ["2013-01-01 05:00:00"]


def test_arrow_timestamps_with_time_zone():
    column = pa.array([dt.datetime(2013, 1, 1, 5)], pa.timestamp("us", tz="UTC"))
    assert to_bigquery_strings(column).tolist() == ["2013-01-01 05:00:00+00"]


@pytest.mark.parametrize(
    "column",
    [
        pa.array([2**60 + 1, None, 10**15], pa.int64()),
        pd.Series([2**60 + 1, None, 10**15], dtype=pd.ArrowDtype(pa.int64())),
    ],
    ids=["arrow", "pandas-arrow"],
)
def test_arrow_integers_with_nulls(column):
    assert to_bigquery_strings(column).tolist() == [str(2**60 + 1), None, str(10**15)]


def test_mixed_object_column_casts_each_value():
    values = ["a", b"b", 1, True, 2.5, dt.date(2013, 1, 1), dt.datetime(2013, 1, 1, 5)]
    expected = ["a", b"b", "1", "true", "2.5", "2013-01-01", "2013-01-01 05:00:00"]
    assert to_bigquery_strings(values).tolist() == expected
    assert fingerprint64_column(values).tolist() == [oracle_fingerprint(t) for t in expected]
    assert fingerprint64_column(values).tolist() == [fingerprint64(v) for v in values]


@pytest.mark.parametrize("value", [decimal.Decimal("1.5"), object(), [1, 2], dt.time(5, 0), 1j])
def test_uncastable_values_raise_type_error_naming_the_type(value):
    with pytest.raises(TypeError, match=type(value).__name__):
        to_bigquery_string(value)
    with pytest.raises(TypeError, match="BigQuery STRING"):
        fingerprint64_column(["a", value])


# -------------------------------------------------------------------------- nulls

NULLS = [None, float("nan"), np.nan, np.float64("nan"), pd.NA, pd.NaT, np.datetime64("NaT")]
NULL_IDS = ["None", "nan", "np.nan", "float64-nan", "pd.NA", "NaT", "datetime64-NaT"]


@pytest.mark.parametrize("null", NULLS, ids=NULL_IDS)
def test_scalar_null_gives_none(null):
    assert is_null(null)
    assert fingerprint64(null) is None
    assert to_bigquery_string(null) is None


@pytest.mark.parametrize("value", ["", "nan", "None", 0, 0.0, False, b""])
def test_falsy_and_null_looking_values_are_not_null(value):
    assert not is_null(value)
    assert fingerprint64(value) is not None


@pytest.mark.parametrize("null", NULLS, ids=NULL_IDS)
def test_null_in_column_raises_a_clear_error(null):
    column = ["a", "b", null, "c", null]
    with pytest.raises(
        ValueError, match=r"2 null value\(s\), the first at position 2.*null_bucket="
    ):
        hash_bucket(column, 10)
    with pytest.raises(ValueError, match=r"fingerprint64_column: 2 null.*null_value="):
        fingerprint64_column(column)


@pytest.mark.parametrize("null", NULLS, ids=NULL_IDS)
def test_null_bucket_and_null_value(null):
    column = ["a", null, "b"]
    for convention in BUCKET_CONVENTIONS:
        got = hash_bucket(column, 10, convention=convention, null_bucket=10).tolist()
        assert got == [
            oracle_bucket(oracle_fingerprint("a"), 10, convention),
            10,
            oracle_bucket(oracle_fingerprint("b"), 10, convention),
        ]
    got = fingerprint64_column(column, null_value=0).tolist()
    assert got == [oracle_fingerprint("a"), 0, oracle_fingerprint("b")]
    assert column[1] is null  # the input is left alone


@pytest.mark.parametrize(
    "column",
    [
        pa.array(["a", None, "b"]),
        pa.array(["a", None, "b"], pa.large_string()),
        pa.array([b"a", None, b"b"]),
        pa.chunked_array([["a"], [None, "b"]]),
        pd.Series(["a", None, "b"]),  # pandas 3 'str': the null is NaN
        pd.Series(["a", None, "b"], dtype=object),
        pd.Series(["a", None, "b"], dtype=pd.StringDtype("python")),
        pd.Series(["a", None, "b"], dtype="category"),
        np.array(["a", None, "b"], dtype=object),
    ],
    ids=[
        "arrow",
        "arrow-large",
        "arrow-binary",
        "arrow-chunked",
        "pandas-str",
        "pandas-object",
        "pandas-python-str",
        "pandas-category",
        "numpy-object",
    ],
)
def test_nulls_in_every_container(column):
    with pytest.raises(ValueError, match="1 null value"):
        hash_bucket(column, 5)
    got = hash_bucket(column, 5, null_bucket=-1).tolist()
    assert got[1] == -1
    assert got[0] == oracle_bucket(oracle_fingerprint("a"), 5, "bigquery")
    assert got[2] == oracle_bucket(oracle_fingerprint("b"), 5, "bigquery")


def test_nulls_in_typed_columns():
    floats = np.array([1.0, np.nan, 2.5])
    assert fingerprint64_column(floats, null_value=7).tolist() == [
        oracle_fingerprint("1"),
        7,
        oracle_fingerprint("2.5"),
    ]
    ints = pd.Series([1, None, 3], dtype="Int64")
    assert to_bigquery_strings(ints).tolist() == ["1", None, "3"]
    bools = pa.array([True, None, False])
    assert to_bigquery_strings(bools).tolist() == ["true", None, "false"]
    dates = pa.array([dt.date(2013, 1, 1), None], pa.date32())
    assert to_bigquery_strings(dates).tolist() == ["2013-01-01", None]
    datetimes = pd.Series(pd.to_datetime(["2013-01-01 05:00:00", None]))
    assert to_bigquery_strings(datetimes).tolist() == ["2013-01-01 05:00:00", None]
    with pytest.raises(ValueError, match="position 1"):
        hash_bucket(datetimes, 3)


def test_all_null_column():
    assert hash_bucket([None, None], 3, null_bucket=3).tolist() == [3, 3]
    with pytest.raises(ValueError, match="2 null value"):
        fingerprint64_column(pa.nulls(2, pa.string()))


# ---------------------------------------------------------------- chunk boundaries


def _keys(n: int) -> list[str]:
    return [f"k{i}" for i in range(n)]


@pytest.mark.parametrize("n", [CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 1])
@pytest.mark.parametrize("make", [list, pa.array, pd.Series], ids=["list", "arrow", "pandas-str"])
def test_chunk_boundaries(n, make):
    keys = _keys(n)
    expected = np.array([oracle_fingerprint(k) for k in keys], dtype=np.int64)
    column = make(keys)
    assert np.array_equal(fingerprint64_column(column), expected)
    assert np.array_equal(
        hash_bucket(column, 1000, convention="keras"),
        bucket_from_fingerprint(expected, 1000, "keras"),
    )


@pytest.mark.parametrize("make", [list, pa.array, pd.Series], ids=["list", "arrow", "pandas-str"])
def test_nulls_at_chunk_boundaries(make):
    n = 2 * CHUNK + 3
    keys: list[str | None] = list(_keys(n))
    null_at = [CHUNK - 1, CHUNK, 2 * CHUNK - 1, 2 * CHUNK, n - 1]
    for i in null_at:
        keys[i] = None
    column = make(keys)
    with pytest.raises(ValueError, match=rf"5 null value\(s\), the first at position {CHUNK - 1};"):
        hash_bucket(column, 100)
    got = hash_bucket(column, 100, null_bucket=100)
    expected = [
        100 if k is None else oracle_bucket(oracle_fingerprint(k), 100, "bigquery") for k in keys
    ]
    assert got.tolist() == expected


def test_first_null_reported_in_a_later_chunk():
    keys: list[str | None] = list(_keys(2 * CHUNK + 10))
    keys[CHUNK] = None
    keys[2 * CHUNK + 9] = None
    with pytest.raises(ValueError, match=rf"2 null value\(s\), the first at position {CHUNK};"):
        fingerprint64_column(pa.array(keys))


def test_chunked_array_with_uneven_chunks():
    keys = _keys(3 * CHUNK)
    cuts = [0, 1, 1, CHUNK - 2, CHUNK + 7, 2 * CHUNK + 1, 3 * CHUNK]
    column = pa.chunked_array([keys[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
    assert fingerprint64_column(column).tolist() == [oracle_fingerprint(k) for k in keys]


def test_sliced_arrow_array_with_offset():
    keys = _keys(CHUNK + 100)
    column = pa.array(keys)[37 : CHUNK + 60]
    assert fingerprint64_column(column).tolist() == [
        oracle_fingerprint(k) for k in keys[37 : CHUNK + 60]
    ]


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "values",
    [np.array([["a", "b"], ["c", "d"]]), np.array([["a"]], dtype=object), np.zeros((2, 2, 2))],
    ids=["2d-U", "2d-object", "3d"],
)
def test_multidimensional_array_is_rejected(values):
    with pytest.raises(ValueError, match=r"1-D column.*shape"):
        hash_bucket(values, 3)
    with pytest.raises(ValueError, match="1-D"):
        fingerprint64_column(values)


@pytest.mark.parametrize(
    "values", ["abc", b"abc", 5, 2.5, None], ids=["str", "bytes", "int", "float", "None"]
)
def test_scalar_instead_of_column_is_rejected(values):
    with pytest.raises(TypeError, match="expected a column of values"):
        hash_bucket(values, 3)
    with pytest.raises(TypeError, match="expected a column of values"):
        fingerprint64_column(values)


def test_zero_dimensional_array_is_rejected():
    with pytest.raises(ValueError, match="1-D"):
        hash_bucket(np.array("abc"), 3)


def test_dataframe_is_rejected():
    frame = pd.DataFrame({"a": ["x", "y", "z"], "b": [1, 2, 3]})
    with pytest.raises((TypeError, ValueError)):
        hash_bucket(frame, 10)


@pytest.mark.parametrize("num_buckets", [0, -1, -(2**63)])
def test_num_buckets_below_one(num_buckets):
    with pytest.raises(ValueError, match=rf"num_buckets must be at least 1, got {num_buckets}"):
        hash_bucket(["a"], num_buckets)
    with pytest.raises(ValueError, match="num_buckets"):
        bucket_from_fingerprint([1], num_buckets)


@pytest.mark.parametrize(
    "num_buckets", [True, False, 3.0, np.float64(3), "3", None, np.bool_(True)]
)
def test_num_buckets_of_the_wrong_type(num_buckets):
    with pytest.raises(TypeError, match=r"num_buckets must be an integer, got"):
        hash_bucket(["a"], num_buckets)
    with pytest.raises(TypeError, match="num_buckets"):
        bucket_from_fingerprint([1], num_buckets)


def test_num_buckets_too_large():
    with pytest.raises(ValueError, match="num_buckets"):
        hash_bucket(["a"], 2**64)


@pytest.mark.parametrize("convention", ["tf", "BigQuery", "", None, "keras "])
def test_unknown_convention(convention):
    with pytest.raises(ValueError, match=r"convention must be one of \('bigquery', 'keras'\)"):
        hash_bucket(["a"], 3, convention=convention)
    with pytest.raises(ValueError, match="convention must be one of"):
        bucket_from_fingerprint([1], 3, convention)


def test_bad_convention_is_reported_before_hashing():
    # the error comes before any value is looked at, even a bad one
    with pytest.raises(ValueError, match="convention"):
        hash_bucket([object()], 3, convention="tf")


# ---------------------------------------------------------------------- user docs


def test_docs_page_examples_run():
    import doctest
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "hashing.md"
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted >= 10


@pytest.mark.parametrize("with_nulls", [False, True])
def test_repetitive_text_columns_hash_per_distinct_value_identically(with_nulls):
    # Long Arrow/pandas text columns that repeat their values take the dictionary path;
    # lists take the row-by-row path: both must agree bit for bit.
    rng = np.random.default_rng(11)
    vocabulary = np.array([f"airport-{i}" for i in range(500)], dtype=object)
    values = vocabulary[rng.integers(0, 500, 200_000)]
    if with_nulls:
        values[rng.integers(0, 200_000, 300)] = None
    rows = list(values)
    for column in (pa.array(rows, pa.string()), pd.Series(rows, dtype="str")):
        for convention in BUCKET_CONVENTIONS:
            got = hash_bucket(column, 1000, convention=convention, null_bucket=1000)
            assert np.array_equal(got, hash_bucket(rows, 1000, convention=convention, null_bucket=1000))
        assert np.array_equal(fingerprint64_column(column, null_value=0), fingerprint64_column(rows, null_value=0))
    if with_nulls:
        with pytest.raises(ValueError, match="300 null value|null value"):
            hash_bucket(pa.array(rows, pa.string()), 10)
