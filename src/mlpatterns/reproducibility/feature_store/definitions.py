"""Feature Store (pattern 26): the definitions, entities and feature views, in plain Python.

The problem the pattern solves: features engineered ad hoc are computed one way for
training and another for serving (training-serving skew), are duplicated across teams,
and, when training data is assembled by a naive join on the key, leak values from the
future: a training row sees a feature value written after the event it is labelled with.
A feature store keeps one definition of each feature, an offline store that answers
point-in-time-correct historical values for training, and (later here) an online store
with the latest values for serving.

An :class:`Entity` names what features describe and the key columns that identify it.
A :class:`FeatureView` is a table of feature values over time: a source (a Parquet or
CSV file, or a pandas DataFrame), the entities whose join keys it carries, the column of
event timestamps (when a value became true), an optional created timestamp (when the row
was written, which resolves two rows with the same event time), a TTL (how long a value
stays valid) and the feature columns. The offline join lives in
:mod:`.offline_store`.

>>> from datetime import timedelta
>>> import pandas as pd
>>> airport = Entity("airport", join_keys=["origin"])
>>> rows = pd.DataFrame({"origin": ["EWR"], "time_hour": [pd.Timestamp("2013-01-01 06:00")],
...                      "temp": [39.0]})
>>> weather = FeatureView("weather", entities=[airport], source=rows, timestamp_field="time_hour",
...                       features=["temp"], ttl=timedelta(hours=3))
>>> weather.join_keys
('origin',)
>>> FeatureView("weather", entities=[airport], source=rows, timestamp_field="time_hour",
...             features=[])
Traceback (most recent call last):
...
ValueError: FeatureView 'weather': features must name at least one column, got none
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Entity", "FeatureView"]

Source = Union[str, Path, "pd.DataFrame"]


def _check_name(owner: str, what: str, value: object) -> str:
    if not isinstance(value, str) or not value.isidentifier() or keyword.iskeyword(value):
        raise ValueError(
            f"{owner}: {what} must be a Python identifier (letters, digits, _), got {value!r}"
        )
    if value.startswith("__mlp_"):
        raise ValueError(f"{owner}: {what} {value!r} uses the reserved prefix '__mlp_'")
    return value


def _names(owner: str, what: str, values: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise TypeError(
            f"{owner}: {what} must be a list of column names, got the string {values!r}"
        )
    names = tuple(_check_name(owner, f"each of {what}", v) for v in values)
    if not names:
        raise ValueError(f"{owner}: {what} must name at least one column, got none")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{owner}: {what} names {duplicates} more than once")
    return names


@dataclass(frozen=True)
class Entity:
    """What features describe (an airport, a customer), identified by its join key columns."""

    name: str
    join_keys: tuple[str, ...]

    def __init__(self, name: str, join_keys: Sequence[str] | str) -> None:
        _check_name("Entity", "name", name)
        object.__setattr__(self, "name", name)
        if isinstance(join_keys, str):  # one key given as a string: accepted as a convenience
            join_keys = [join_keys]
        object.__setattr__(self, "join_keys", _names(f"Entity {name!r}", "join_keys", join_keys))


@dataclass(frozen=True, eq=False)
class FeatureView:
    """Feature values over time for one or more entities, read from ``source``.

    ``source`` is a path to a ``.parquet`` or ``.csv`` file (read by DuckDB when the view is
    used) or a pandas DataFrame. ``ttl`` (a positive :class:`~datetime.timedelta`, or
    ``None`` for no limit) bounds how old a value may be at the time it is asked for.
    Nothing reads the source here; columns and types are checked by the offline store.
    """

    name: str
    entities: tuple[Entity, ...]
    source: Any
    timestamp_field: str
    features: tuple[str, ...]
    ttl: timedelta | None = None
    created_timestamp_field: str | None = None
    join_keys: tuple[str, ...] = field(init=False)

    def __init__(
        self,
        name: str,
        entities: Sequence[Entity],
        source: Source,
        timestamp_field: str,
        features: Sequence[str],
        ttl: timedelta | None = None,
        created_timestamp_field: str | None = None,
    ) -> None:
        _check_name("FeatureView", "name", name)
        owner = f"FeatureView {name!r}"
        if isinstance(entities, Entity):
            entities = [entities]
        entities = tuple(entities)
        if not entities:
            raise ValueError(f"{owner}: entities must list at least one Entity, got none")
        for entity in entities:
            if not isinstance(entity, Entity):
                raise TypeError(
                    f"{owner}: entities must be Entity objects, got {type(entity).__name__}"
                )
        join_keys: list[str] = []
        for entity in entities:
            join_keys.extend(k for k in entity.join_keys if k not in join_keys)
        _check_source(owner, source)
        _check_name(owner, "timestamp_field", timestamp_field)
        if created_timestamp_field is not None:
            _check_name(owner, "created_timestamp_field", created_timestamp_field)
            if created_timestamp_field == timestamp_field:
                raise ValueError(
                    f"{owner}: created_timestamp_field must differ from timestamp_field "
                    f"{timestamp_field!r}"
                )
        feature_names = _names(owner, "features", features)
        for feature in feature_names:
            if feature in join_keys:
                raise ValueError(
                    f"{owner}: feature {feature!r} is also a join key of its entities; "
                    "a feature must be a column other than the keys"
                )
            if feature in (timestamp_field, created_timestamp_field):
                raise ValueError(f"{owner}: feature {feature!r} is also a timestamp field")
        for key in join_keys:
            if key in (timestamp_field, created_timestamp_field):
                raise ValueError(f"{owner}: join key {key!r} is also a timestamp field")
        if ttl is not None:
            if not isinstance(ttl, timedelta):
                raise TypeError(
                    f"{owner}: ttl must be a datetime.timedelta or None, got {type(ttl).__name__}"
                )
            if ttl <= timedelta(0):
                raise ValueError(f"{owner}: ttl must be positive (or None for no limit), got {ttl}")
        for attribute, value in [
            ("name", name),
            ("entities", entities),
            ("source", source),
            ("timestamp_field", timestamp_field),
            ("features", feature_names),
            ("ttl", ttl),
            ("created_timestamp_field", created_timestamp_field),
            ("join_keys", tuple(join_keys)),
        ]:
            object.__setattr__(self, attribute, value)

    def select(self, *features: str) -> FeatureView:
        """The same view limited to some of its features (a feature reference, as Feast's ``view:feature``)."""
        unknown = [f for f in features if f not in self.features]
        if unknown:
            raise ValueError(
                f"FeatureView {self.name!r}: no feature(s) {unknown}; it has {list(self.features)}"
            )
        return replace(self, features=list(features))  # validated again by __init__


def _check_source(owner: str, source: object) -> None:
    if isinstance(source, (str, Path)):
        suffix = Path(source).suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise ValueError(
                f"{owner}: source must be a .parquet or .csv path or a pandas DataFrame, "
                f"got {str(source)!r}"
            )
        return
    if type(source).__name__ == "DataFrame" and hasattr(source, "columns"):
        return
    raise TypeError(
        f"{owner}: source must be a .parquet or .csv path or a pandas DataFrame, "
        f"got {type(source).__name__}"
    )
