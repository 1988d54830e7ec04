"""FarmHash Fingerprint64, bit-exact with BigQuery ``FARM_FINGERPRINT`` and Keras ``Hashing``.

The Hashed Feature (1) and Repeatable Splitting (22) patterns both rest on one
deterministic hash that gives the same value in SQL, in Python and in a serving
process, run after run and machine after machine. BigQuery exposes it as
``FARM_FINGERPRINT`` (a *signed* INT64); TensorFlow's ``tf.strings.to_hash_bucket_fast``
and the Keras ``Hashing`` layer use the same FarmHash Fingerprint64 but read it as an
*unsigned* integer. This module wraps the ``pyfarmhash`` binding (the reference
implementation, not a re-implementation) and vectorizes around it.

Casting to text
---------------
FARM_FINGERPRINT takes STRING or BYTES, so every other value is first cast the way
BigQuery's ``CAST(x AS STRING)`` does:

========================  ===========================================================
value                     text that is hashed
========================  ===========================================================
``str``                   the string itself, encoded as UTF-8
``bytes``                 the bytes themselves
``bool``                  ``"true"`` / ``"false"``
integers                  decimal digits, ``"-12"``
floats                    ZetaSQL's round-trip form: ``%.15g``, or ``%.17g`` when 15
                          digits do not give the value back: ``"1"`` for 1.0,
                          ``"0.1"``, ``"1e+15"``, ``"1e-05"``, ``"inf"``, ``"-inf"``
                          (NaN is a null, below). Prefer integer or string keys: a
                          float key hashes the same only if both sides cast alike.
``datetime.date``,        ``"2013-01-01"``, ``"0999-03-04"`` (a BigQuery DATE)
Arrow ``date32``
naive ``datetime``,       ``"2013-01-01 05:00:00"``; a fraction of a second prints 3
``datetime64``            digits when it is whole milliseconds (``".120"``) and 6
                          otherwise (``".123450"``) (a BigQuery DATETIME)
aware ``datetime``        converted to UTC, ``"2013-01-01 05:00:00.100+00"`` (a
                          BigQuery TIMESTAMP in its default time zone, UTC)
========================  ===========================================================

Years always print 4 digits, zero-padded. Nanoseconds are truncated to microseconds,
BigQuery's precision. The date and time rules follow ZetaSQL's compliance tests
(``civil_time.test``, ``timestamp.test``); docs/hashing.md lists the evidence.

Nulls
-----
BigQuery returns NULL for ``FARM_FINGERPRINT(NULL)``; a NumPy ``int64`` array has no
NULL. The scalar functions return ``None``. The column functions raise a
:class:`ValueError` naming how many nulls there are and where the first one is,
unless you say what a null becomes (``null_value=`` for fingerprints, ``null_bucket=``
for buckets). None, ``float('nan')``, ``pandas.NA`` and ``NaT`` count as null.
The DuckDB functions of :mod:`mlpatterns.sql` propagate NULL, as BigQuery does.

Bucket conventions
------------------
``"bigquery"`` (the default, because it is the formula of the book and of BigQuery
SQL): ``ABS(MOD(FARM_FINGERPRINT(x), n))`` where MOD keeps the sign of the dividend.
``"keras"``: ``uint64(fingerprint) % n``, as ``tf.strings.to_hash_bucket_fast`` and
``keras.layers.Hashing(num_bins=n)`` compute it. The two agree for non-negative
fingerprints and differ for negative ones (half of all values).

Examples
--------
>>> fingerprint64("alphabet")
-2427165924636348523
>>> hash_bucket(["Hello", "TensorFlow", "2.x"], 3, convention="keras").tolist()
[0, 2, 2]
>>> to_bigquery_string(True), to_bigquery_string(1.0), to_bigquery_string(7)
('true', '1', '7')
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import farmhash
import numpy as np

__all__ = [
    "BUCKET_CONVENTIONS",
    "BucketConvention",
    "bucket_from_fingerprint",
    "fingerprint64",
    "fingerprint64_column",
    "hash_bucket",
    "is_null",
    "to_bigquery_string",
    "to_bigquery_strings",
]

BucketConvention = Literal["bigquery", "keras"]
BUCKET_CONVENTIONS: tuple[str, ...] = ("bigquery", "keras")

_UINT64_TO_INT64 = 1 << 64
_UINT64_MAX = (1 << 64) - 1
_INT64_MAX = (1 << 63) - 1


def is_null(value: Any) -> bool:
    """True for the values that BigQuery would see as NULL: None, NaN, NA, NaT."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (str, bytes, bool, int)):
        return False
    try:
        import pandas as pd

        result = pd.isna(value)
    except (TypeError, ValueError):
        return False
    return bool(result) if np.ndim(result) == 0 else False


def _float_to_string(value: float) -> str:
    # ZetaSQL's RoundTripDoubleToString: %.15g, or %.17g when 15 digits do not round-trip.
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"  # BigQuery does not sign a zero
    text = f"{value:.15g}"
    if float(text) != value:
        text = f"{value:.17g}"
    return text


def _datetime_to_string(value: _dt.datetime) -> str:
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(_dt.UTC).replace(tzinfo=None)
        suffix = "+00"
    else:
        suffix = ""
    # Not strftime: glibc writes year 999 as "999", BigQuery as "0999".
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    if value.microsecond % 1000:
        text += f".{value.microsecond:06d}"
    elif value.microsecond:  # whole milliseconds print 3 digits, as ZetaSQL does
        text += f".{value.microsecond // 1000:03d}"
    return text + suffix


def to_bigquery_string(value: Any) -> str | bytes | None:
    """Cast one value to text the way BigQuery's ``CAST(x AS STRING)`` does.

    Bytes stay bytes (FARM_FINGERPRINT accepts BYTES directly); nulls give ``None``.
    """
    if isinstance(value, (str, bytes)):
        return value
    if is_null(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _float_to_string(float(value))
    if isinstance(value, np.datetime64):
        date_like = np.datetime_data(value.dtype)[0] in ("D", "W", "M", "Y")
        value = value.astype("datetime64[D]" if date_like else "datetime64[us]").item()
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp; BigQuery has microseconds at most
        value = value.to_pydatetime(warn=False)
    if isinstance(value, _dt.datetime):
        return _datetime_to_string(value)
    if isinstance(value, _dt.date):
        return value.isoformat()
    raise TypeError(
        f"cannot cast a value of type {type(value).__name__} to a BigQuery STRING; "
        "expected str, bytes, bool, int, float, date or datetime"
    )


def _unsigned_to_signed(unsigned: int) -> int:
    return unsigned - _UINT64_TO_INT64 if unsigned > _INT64_MAX else unsigned


def fingerprint64(value: Any) -> int | None:
    """FarmHash Fingerprint64 of one value as a signed int, like ``FARM_FINGERPRINT``.

    Returns ``None`` for a null, as BigQuery returns NULL.

    >>> fingerprint64("foo"), fingerprint64(None)
    (6150913649986995171, None)
    """
    text = to_bigquery_string(value)
    if text is None:
        return None
    return _unsigned_to_signed(farmhash.fingerprint64(text))


_PLAIN_TEXT = {str, bytes}
# Below this share of distinct values in the first _PROBE_ROWS rows, a text column is hashed per
# distinct value (see _dictionary_encoded).
_DEDUPLICATE_BELOW = 0.5
_PROBE_ROWS = 65_536
_CHUNK_ROWS = 16_384  # small enough that the strings of a chunk stay in cache


def _as_column(values: Any) -> Any:
    """The values as an Arrow array where Arrow holds them natively, else a 1-D object array."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(values, Mapping) or type(values).__name__ == "DataFrame":
        raise TypeError(
            f"expected one column of values, got a {type(values).__name__}; "
            "hash each column separately"
        )
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    if isinstance(values, (pd.Series, pd.Index, pd.api.extensions.ExtensionArray)):
        if isinstance(values.dtype, (pd.StringDtype, pd.ArrowDtype)):
            try:
                return _as_column(pa.array(values))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                pass
        return np.asarray(values.to_numpy(dtype=object, na_value=None), dtype=object)
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"expected a 1-D column of values, got an array of shape {values.shape}")
        return values
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(
            "expected a column of values (list, NumPy array, pandas Series, Arrow array), "
            f"got {type(values).__name__}"
        )
    items = list(values)
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _is_text(column: Any) -> bool:
    import pyarrow as pa

    if isinstance(column, pa.Array):
        kind = column.type
        return (
            pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
            or pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind)
        )
    return column.dtype.kind in ("U", "S")


def _cast_chunk(piece: np.ndarray) -> np.ndarray:
    return np.fromiter(map(to_bigquery_string, piece), dtype=object, count=len(piece))


def _raw_chunks(values: Any) -> tuple[int, bool, bool, Iterable[np.ndarray]]:
    """Row count, whether every value is text, whether nulls are possible, and object chunks.

    Chunks of a column that is not known to be text are not cast yet: most object
    columns hold strings only, which hash as they are (see :func:`_hash_column`).
    """
    column = _as_column(values)
    text = _is_text(column)
    n = len(column)
    is_arrow = not isinstance(column, np.ndarray)
    if not is_arrow and column.dtype.kind == "M":
        # datetime64[ns] would become integers through astype(object); microseconds
        # (BigQuery's precision) become datetime objects, datetime64[D] and coarser dates.
        date_like = np.datetime_data(column.dtype)[0] in ("D", "W", "M", "Y")
        column = column.astype("datetime64[D]" if date_like else "datetime64[us]")
    may_be_null = column.null_count > 0 if is_arrow else column.dtype.kind in ("O", "f", "M", "m")

    def to_objects(piece: Any) -> np.ndarray:
        if is_arrow:
            if text:
                return piece.to_numpy(zero_copy_only=False).astype(object, copy=False)
            # to_pylist keeps int64 exact, dates as dates and time zones on timestamps
            items = piece.to_pylist()
            array = np.empty(len(items), dtype=object)
            array[:] = items
            return array
        return piece.astype(object, copy=False)

    def chunks() -> Iterable[np.ndarray]:
        for start in range(0, n, _CHUNK_ROWS):
            yield to_objects(column[start : start + _CHUNK_ROWS])

    return n, text, may_be_null, chunks()


def to_bigquery_strings(values: Any) -> np.ndarray:
    """Cast a column to an object array of str/bytes (None for nulls), as BigQuery casts."""
    n, text, _, chunks = _raw_chunks(values)
    out = np.empty(n, dtype=object)
    start = 0
    for piece in chunks:
        out[start : start + len(piece)] = piece if text else _cast_chunk(piece)
        start += len(piece)
    return out


def _nulls_error(what: str, count: int, first: int, argument: str) -> ValueError:
    return ValueError(
        f"{what}: {count} null value(s), the first at position {first}; BigQuery gives NULL "
        f"for them and a NumPy int64 array cannot. Pass {argument}= to say what a null "
        "becomes, or drop the nulls first."
    )


def _dictionary_encoded(values: Any) -> Any:
    """An Arrow dictionary encoding of a long text column that repeats its values, else None.

    Categorical columns (airports, carriers, product ids) repeat a few values many
    times: hashing each distinct value once and taking by index is several times
    faster than hashing every row, and gives the same result. A probe of the first
    65,536 rows decides, so mostly distinct columns (ids) pay nothing for it.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        column = values
    elif type(values).__name__ in ("Series", "Index") and str(values.dtype) in ("str", "string"):
        try:
            column = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            return None
    else:
        return None
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if len(column) <= 2 * _PROBE_ROWS or not _is_text(column):
        return None
    probe = column.slice(0, _PROBE_ROWS)
    if pc.count_distinct(probe).as_py() > _DEDUPLICATE_BELOW * len(probe):
        return None
    return pc.dictionary_encode(column)


def _hash_dictionary(encoded: Any, finish: Any, null_result: int | None, what: str, argument: str) -> np.ndarray:
    indices = encoded.indices
    per_value = finish(_hash_column(encoded.dictionary, lambda f: f, None, what, argument))
    null_count = indices.null_count
    if null_count and null_result is None:
        first = int(np.argmax(indices.is_null().to_numpy(zero_copy_only=False)))
        raise _nulls_error(what, null_count, first, argument)
    out = per_value[indices.fill_null(0).to_numpy()] if len(per_value) else np.zeros(len(indices), np.int64)
    if null_count:
        out[indices.is_null().to_numpy(zero_copy_only=False)] = null_result
    return out


def _hash_column(values: Any, finish: Any, null_result: int | None, what: str, argument: str) -> np.ndarray:
    """Fingerprint a column chunk by chunk, apply ``finish`` to each chunk's int64 fingerprints.

    Arrow text is converted to Python strings and hashed in cache-sized chunks, so the
    strings of a chunk are still in cache when they are hashed. A chunk of an object
    column that holds only str and bytes is hashed as it is; any other chunk is cast
    first. (pyfarmhash would also hash the raw buffer of a NumPy scalar, which is not
    what BigQuery hashes, so the type check is exact, not a try/except.)
    """
    repeated = _dictionary_encoded(values)
    if repeated is not None:
        return _hash_dictionary(repeated, finish, null_result, what, argument)
    n, text, may_be_null, chunks = _raw_chunks(values)
    out = np.empty(n, dtype=np.int64)
    fingerprint = farmhash.fingerprint64
    start = 0
    null_count, first_null = 0, -1
    for piece in chunks:
        size = len(piece)
        hashed = None
        if text and not may_be_null or not text and set(map(type, piece)) <= _PLAIN_TEXT:
            hashed = np.fromiter(map(fingerprint, piece), dtype=np.uint64, count=size)
        nulls = None
        if hashed is None:
            if not text:
                piece = _cast_chunk(piece)
            nulls = np.equal(piece, None)
            if nulls.any():
                if null_count == 0:
                    first_null = start + int(np.argmax(nulls))
                null_count += int(nulls.sum())
                if null_result is None:
                    start += size
                    continue
                piece = np.where(nulls, "", piece).astype(object, copy=False)
            else:
                nulls = None
            hashed = np.fromiter(map(fingerprint, piece), dtype=np.uint64, count=size)
        result = finish(hashed.view(np.int64))
        if nulls is not None:
            result[nulls] = null_result
        out[start : start + size] = result
        start += size
    if null_count and null_result is None:
        raise _nulls_error(what, null_count, first_null, argument)
    return out


def fingerprint64_column(values: Any, *, null_value: int | None = None) -> np.ndarray:
    """FarmHash Fingerprint64 of every value of a column, as a signed ``int64`` array.

    Parameters
    ----------
    values : list, NumPy array, pandas Series or Arrow array
        Strings are hashed as they are; other values are cast as BigQuery's
        ``CAST(x AS STRING)`` does (see the module docstring).
    null_value : int, optional
        The fingerprint given to nulls. Without it a column holding a null raises
        :class:`ValueError`.

    Returns
    -------
    numpy.ndarray of int64
        Bit-exact with ``FARM_FINGERPRINT(CAST(x AS STRING))``.
    """
    return _hash_column(values, lambda f: f, null_value, "fingerprint64_column", "null_value")


def bucket_from_fingerprint(
    fingerprints: np.ndarray, num_buckets: int, convention: BucketConvention = "bigquery"
) -> np.ndarray:
    """Buckets in ``[0, num_buckets)`` from signed int64 fingerprints, by convention."""
    _check_num_buckets(num_buckets)
    fingerprints = np.asarray(fingerprints, dtype=np.int64)
    if convention == "bigquery":
        # ABS(MOD(f, n)) == |f| mod n. np.abs(INT64_MIN) wraps to INT64_MIN, whose
        # uint64 view is 2**63, the true magnitude.
        magnitude = np.abs(fingerprints).view(np.uint64)
        return (magnitude % np.uint64(num_buckets)).astype(np.int64)
    if convention == "keras":
        return (fingerprints.view(np.uint64) % np.uint64(num_buckets)).astype(np.int64)
    raise ValueError(
        f"convention must be one of {BUCKET_CONVENTIONS}, got {convention!r}"
    )


def _check_num_buckets(num_buckets: int) -> None:
    if isinstance(num_buckets, bool) or not isinstance(num_buckets, (int, np.integer)):
        raise TypeError(f"num_buckets must be an integer, got {type(num_buckets).__name__}")
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be at least 1, got {num_buckets}")
    if num_buckets > _UINT64_MAX:
        raise ValueError(f"num_buckets must be at most 2**64 - 1, got {num_buckets}")


def hash_bucket(
    values: Any,
    num_buckets: int,
    *,
    convention: BucketConvention = "bigquery",
    null_bucket: int | None = None,
) -> np.ndarray:
    """Hash every value of a column into one of ``num_buckets`` buckets.

    ``convention="bigquery"`` computes ``ABS(MOD(FARM_FINGERPRINT(CAST(x AS STRING)), n))``;
    ``convention="keras"`` computes what ``keras.layers.Hashing(num_bins=n)`` and
    ``tf.strings.to_hash_bucket_fast(x, n)`` compute. Nulls go to ``null_bucket``
    (for example ``num_buckets``, an extra bucket of their own); without it a null
    raises :class:`ValueError`.

    >>> hash_bucket(["A", "B", "C", "D", "E"], 3, convention="keras").tolist()
    [1, 0, 1, 1, 2]
    """
    _check_num_buckets(num_buckets)
    if convention not in BUCKET_CONVENTIONS:
        raise ValueError(f"convention must be one of {BUCKET_CONVENTIONS}, got {convention!r}")
    return _hash_column(
        values,
        lambda f: bucket_from_fingerprint(f, num_buckets, convention),
        null_bucket,
        "hash_bucket",
        "null_bucket",
    )
