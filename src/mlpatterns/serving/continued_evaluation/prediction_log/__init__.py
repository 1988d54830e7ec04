"""The prediction log of Continued Model Evaluation (18): where served predictions and the
ground truth that arrives later are kept, behind one base class with a backend per storage.

=========================================  =============================================
URL                                        backend
=========================================  =============================================
``None``, a folder path, ``file:///DIR``   Parquet files in a folder (the embedded default,
                                           ``predictions/`` beside the current directory)
``sqlite:///PATH.db``                      an SQLite file in WAL mode (one machine)
``postgresql+psycopg://USER:PW@HOST/DB``   PostgreSQL (``postgresql://`` means psycopg 3)
=========================================  =============================================

>>> import tempfile
>>> with open_prediction_log(tempfile.mkdtemp()) as log:
...     log.predictions().num_rows
0
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlpatterns.backends import Backend, BackendFamily, open_backend
from mlpatterns.serving.continued_evaluation.prediction_log._base import (
    KEY_SEPARATOR,
    LABEL_COLUMNS,
    PREDICTION_COLUMNS,
    CompactionResult,
    LabelCounts,
    PredictionLog,
    PredictionLogError,
    arrow_schema,
    label_text,
)

__all__ = [
    "KEY_SEPARATOR", "LABEL_COLUMNS", "PREDICTION_COLUMNS", "PREDICTION_LOG_BACKENDS", "CompactionResult", "LabelCounts", "PredictionLog",
    "PredictionLogError", "arrow_schema", "label_text", "open_prediction_log",
]

_PACKAGE = "mlpatterns.serving.continued_evaluation.prediction_log"
DEFAULT_URL = "predictions"
PREDICTION_LOG_BACKENDS = BackendFamily(
    name="prediction log",
    default=DEFAULT_URL,
    schemes={
        "file": Backend(f"{_PACKAGE}.files:ParquetPredictionLog", requires=("pyarrow", "duckdb")),
        "sqlite": Backend(f"{_PACKAGE}.sqlite:SQLitePredictionLog", requires=("pyarrow",)),
        "postgresql": Backend(f"{_PACKAGE}.postgresql:PostgresPredictionLog",
                              requires=("sqlalchemy", "psycopg"), extra="registry"),
    },
    examples=("a folder path", "file:///FOLDER", "sqlite:///PATH.db",
              "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"),
)
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_OPTIONS = {"file": (), "sqlite": ("timeout",), "postgresql": ("engine_kwargs",)}  # each backend's keyword options
_BACKEND_NAMES = {"file": "Parquet folder", "sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _check_options(scheme: str, options: dict[str, Any]) -> None:
    """Refuse the ``options`` the ``scheme``'s backend does not take, naming those it takes."""
    takes = _OPTIONS.get(scheme)
    unknown = sorted(set(options) - set(takes)) if takes is not None else []
    if unknown:
        raise PredictionLogError(f"prediction log: the {_BACKEND_NAMES[scheme]} backend does not take the option(s) "
                                 f"{unknown}; it takes {', '.join(map(repr, takes)) if takes else 'none'}")


def open_prediction_log(url: str | os.PathLike[str] | PredictionLog | None = None, **options: Any) -> PredictionLog:
    """The prediction log ``url`` names (see the table above); an open log is returned as it is.

    A text without ``://`` is a folder of Parquet files (relative to the current directory),
    except a name ending in ``.db``/``.sqlite``, which is refused with the SQLite URL to write.
    ``options`` go to the backend (SQLite ``timeout``; PostgreSQL ``engine_kwargs``; a Parquet folder
    takes none); one the backend does not take is refused with a :class:`PredictionLogError`.
    """
    if isinstance(url, PredictionLog):
        return url
    if url is None or url == "":
        url = DEFAULT_URL
    if isinstance(url, os.PathLike) or "://" not in url:
        text = os.fspath(url)
        if text.lower().endswith(_SQLITE_SUFFIXES):
            raise PredictionLogError(f"prediction log: {text!r} looks like an SQLite file; write "
                                     f"'sqlite:///{text}' (or a folder path for Parquet files)")
        _check_options("file", options)
        from mlpatterns.serving.continued_evaluation.prediction_log.files import (
            ParquetPredictionLog,
        )

        return ParquetPredictionLog(Path(text), **options)
    if options:
        from mlpatterns.backends import parse_url

        try:
            scheme = parse_url(url).scheme
        except ValueError:  # a malformed URL: open_backend says what is wrong with it
            scheme = ""
        _check_options(scheme, options)
    try:
        return open_backend(PREDICTION_LOG_BACKENDS, url, **options)
    except PredictionLogError:
        raise
    except ValueError as error:
        raise PredictionLogError(str(error)) from None

