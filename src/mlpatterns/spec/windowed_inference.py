"""The spec's ``data.windows``: window features declared once, for training and serving (Windowed Inference, 24).

::

    data:
      path: flights.parquet
      windows:
        key: origin                  # the column partitioning the events (omit: one window for all)
        time: scheduled              # the event time (a timestamp)
        features:
          origin_delay_1h: {column: dep_delay, aggregate: mean, width: 1h}
          origin_delay_sd_1d: {column: dep_delay, aggregate: std, width: 1d}

``mlpatterns run`` computes each feature for every row of the file (before
``data.sample_fraction`` samples it) over ``[t - width, t)`` of the earlier rows of its key (DuckDB, :func:`~mlpatterns.reproducibility.windowed_inference.window_features`;
rows at the same time are never in each other's windows) before the split, so they are
columns like the file's: name them in ``features.numeric``. The bundle records the
declaration; ``mlpatterns serve`` computes the same features with the stateful stream
processor (:class:`~mlpatterns.reproducibility.windowed_inference.StreamWindows`) over the
requests it answers, and ``mlpatterns predict`` over the file it scores.
"""

from __future__ import annotations

from typing import Any

from mlpatterns.spec._checks import SpecError, expect, mapping

__all__ = ["FIELDS", "declarations", "join_window_features", "parse_windows"]

FIELDS = ("key", "time", "features")
_FEATURE = ("column", "aggregate", "width")


def parse_windows(value: Any) -> dict[str, Any]:
    """The section checked: each feature's column, aggregate and width (a duration such as ``2h``)."""
    from mlpatterns.reproducibility.windowed_inference import AGGREGATES

    where = "data.windows"
    section = mapping(value, where, FIELDS)
    for required in ("time", "features"):
        expect(required in section, where, f"missing field {required!r}")
    for name in ("key", "time"):
        if name in section:
            expect(isinstance(section[name], str) and section[name] != "", f"{where}.{name}",
                   f"expected a column name, got {section[name]!r}")
    features = mapping(section["features"], f"{where}.features")
    expect(bool(features), f"{where}.features", "expected at least one window feature")
    for name, body in features.items():
        at = f"{where}.features.{name}"
        body = mapping(body, at, _FEATURE)
        for required in _FEATURE:
            expect(required in body, at, f"missing field {required!r}")
        expect(body["aggregate"] in AGGREGATES, f"{at}.aggregate",
               f"expected one of {list(AGGREGATES)}, got {body['aggregate']!r}")
        expect(isinstance(body["column"], str) and body["column"] != "", f"{at}.column",
               f"expected the column aggregated, got {body['column']!r}")
        expect(isinstance(body["width"], str), f"{at}.width", f"expected a duration such as '2h', got {body['width']!r}")
        features[name] = dict(body)
    section["features"] = features
    declarations(section)  # every width and name checked now
    return section


def declarations(section: dict[str, Any]) -> list[Any]:
    """The section's :class:`~mlpatterns.reproducibility.windowed_inference.WindowFeature` declarations."""
    from mlpatterns.reproducibility.windowed_inference import WindowFeature

    out = []
    for name, body in section["features"].items():
        try:
            out.append(WindowFeature(name, body["column"], body["aggregate"], body["width"],
                                     key=section.get("key"), time=section["time"]))
        except (TypeError, ValueError) as error:
            raise SpecError(f"data.windows.features.{name}: {error}") from None
    return out


def join_window_features(section: dict[str, Any], frame: Any) -> Any:
    """``frame`` with the window features appended (batch, DuckDB), or a SpecError naming the field."""
    from mlpatterns.reproducibility.windowed_inference import window_features

    features = declarations(section)
    missing = sorted({f.column for f in features} - set(frame.columns))
    if missing:
        raise SpecError(f"data.windows.features: no column(s) {missing} in the data file (a window reads the file's "
                        "columns, which serving receives too; not stored features)")
    clash = [f.name for f in features if f.name in frame.columns]
    if clash:
        raise SpecError(f"data.windows.features: the data already has the column(s) {clash}; name the window "
                        "features otherwise")
    try:
        computed = window_features(frame, features)
    except (TypeError, ValueError) as error:
        raise SpecError(f"data.windows: {error}") from None
    return frame.join(computed)
