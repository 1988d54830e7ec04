"""Day length from latitude and day of year: the deterministic function that Useful Overfitting (11) emulates.

The hours from sunrise to sunset are closed-form (NOAA's sunrise equation with
Spencer's series for the solar declination) and their input space is enumerable:
whole degrees of latitude times days of the year. That makes them the example of
``examples/useful_overfitting_solar.py`` and the ``solar_day_length`` data set of
the spec (:func:`mlpatterns.datasets.load_solar_day_length`).

Examples
--------
>>> round(float(day_length_hours(0, 80)), 2)  # the equator, about the March equinox
12.11
>>> solar_grid(latitude_step=10, day_step=30)
FunctionGrid({'latitude': 13, 'day_of_year': 14})
"""

from __future__ import annotations

import numpy as np

__all__ = ["DAYS_PER_YEAR", "day_length_hours", "solar_declination", "solar_grid"]

DAYS_PER_YEAR = 365


def solar_declination(day_of_year):
    """Solar declination in radians, Spencer's Fourier series.

    ``g = 2 pi (day - 1) / 365`` is the fractional year (at noon) and
    ``decl = 0.006918 - 0.399912 cos g + 0.070257 sin g - 0.006758 cos 2g
    + 0.000907 sin 2g - 0.002697 cos 3g + 0.00148 sin 3g``: Spencer, J. W. (1971),
    "Fourier series representation of the position of the sun", *Search* 2(5), 172;
    the form NOAA's Global Monitoring Laboratory gives in "General Solar Position
    Calculations" (https://gml.noaa.gov/grad/solcalc/solareqns.PDF).
    """
    g = 2 * np.pi * (np.asarray(day_of_year, dtype=float) - 1) / DAYS_PER_YEAR
    return (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
            + 0.000907 * np.sin(2 * g) - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))


def day_length_hours(latitude, day_of_year):
    """Hours from sunrise to sunset, NOAA's sunrise equation.

    The sunrise hour angle ``ha`` solves ``cos ha = cos(90.833 deg) / (cos lat cos decl)
    - tan lat tan decl`` (90.833 deg: the zenith at sunrise, allowing for refraction and
    the sun's radius; NOAA, "General Solar Position Calculations"), and the day lasts
    ``2 ha / 15`` hours (``ha`` in degrees). Between -60 and 60 degrees there is no
    polar day or night; outside, ``cos ha`` is clipped to [-1, 1] (24 or 0 hours).
    """
    phi, decl = np.radians(np.asarray(latitude, dtype=float)), solar_declination(day_of_year)
    cos_ha = np.cos(np.radians(90.833)) / (np.cos(phi) * np.cos(decl)) - np.tan(phi) * np.tan(decl)
    return 2 * np.degrees(np.arccos(np.clip(cos_ha, -1, 1))) / 15


def solar_grid(latitude_step: int = 1, day_step: int = 1):
    """Latitudes -60..60 and days 1..365 as a :class:`~mlpatterns.training.useful_overfitting.FunctionGrid`.

    Every ``*_step``-th value; the last (60 degrees, day 365) is always kept.
    """
    from mlpatterns.training.useful_overfitting import FunctionGrid

    latitudes = np.unique(np.append(np.arange(-60, 61, latitude_step), 60))
    days = np.unique(np.append(np.arange(1, DAYS_PER_YEAR + 1, day_step), DAYS_PER_YEAR))
    return FunctionGrid({"latitude": latitudes, "day_of_year": days})
