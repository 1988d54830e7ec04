"""A traffic split between versions of one model, by key (Stateless Serving Function, 16).

Problem: a new version should first answer a share of the traffic (a canary, an A/B
test) while the old one answers the rest; a random draw per request sends one customer
to both versions in turn, so neither experience nor comparison is consistent.

Solution: each row goes to a version by a hash of its key columns, the hash of
Repeatable Splitting (22): ``ABS(MOD(FARM_FINGERPRINT(CAST(key AS STRING)), 10000))``
(:func:`~mlpatterns.reproducibility.repeatable_splitting.key_buckets`; several key
columns are concatenated). The shares, in percent with at most two decimals, take
consecutive ranges of the 10,000 buckets in the order given, so a key always goes to the
same version, in every process and after a restart, and moving a share from 90:10 to
80:20 only moves keys towards the growing version. A target is a served version
(``3``) or a label (``champion``), which follows its version when an alias moves.
:meth:`TrafficSplit.assign` reads the keys of a DataFrame (the batch path, pandas);
:meth:`TrafficSplit.assign_rows` the keys of rows of JSON values, with the same buckets
and without pandas (:func:`~mlpatterns.reproducibility.split_keys.row_key_buckets`), so
that a split request of few rows takes the online path of ``mlpatterns serve``.

>>> TrafficSplit.parse("3:90,4:10").ranges()
[(3, 0, 9000), (4, 9000, 10000)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlpatterns.reproducibility.model_versioning.model_uri import (
    RegistryError,
    check_alias,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BUCKETS", "SplitError", "Target", "TrafficSplit", "parse_target"]

BUCKETS = 10_000  # a share is a whole number of 1/10000: percentages with two decimals
Target = int | str  # a version, or a label


class SplitError(ValueError):
    """A traffic split that cannot be used; the message names the share or the target."""


def parse_target(text: Any, where: str = "traffic split") -> Target:
    """A version (a positive whole number) or a label (a name that starts with a letter)."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        if text < 1:
            raise SplitError(f"{where}: a version is a positive whole number, got {text!r}")
        return int(text)
    if isinstance(text, str) and text.isascii() and text.isdigit():
        if text.startswith("0"):
            raise SplitError(f"{where}: a version is 1, 2, 3..., got {text!r}")
        return int(text)
    try:
        return check_alias(text)
    except RegistryError as error:
        raise SplitError(f"{where}: expected a version (3) or a label (champion), got {text!r}") from error


@dataclass(frozen=True)
class TrafficSplit:
    """Shares of one model's traffic, ``(target, percent)`` in bucket order; they sum to 100."""

    shares: tuple[tuple[Target, float], ...]

    def __post_init__(self) -> None:
        if not self.shares:
            raise SplitError("traffic split: give at least one VERSION:PERCENT")
        seen: set[Target] = set()
        total = 0
        for target, percent in self.shares:
            parse_target(target)
            if target in seen:
                raise SplitError(f"traffic split: {target} is given twice")
            seen.add(target)
            total += self._buckets(target, percent)
        if total != BUCKETS:
            given = ",".join(f"{t}:{p:g}" for t, p in self.shares)
            raise SplitError(f"traffic split {given}: the shares sum to {total / 100:g}, expected 100")

    @staticmethod
    def _buckets(target: Target, percent: Any) -> int:
        if isinstance(percent, bool) or not isinstance(percent, (int, float, np.number)) or not 0 < percent <= 100:
            raise SplitError(f"traffic split, share of {target}: expected a percentage in (0, 100], got {percent!r}")
        buckets = float(percent) * BUCKETS / 100
        if abs(buckets - round(buckets)) > 1e-6:
            raise SplitError(f"traffic split, share of {target}: {percent!r} has more than two decimals")
        return round(buckets)

    @classmethod
    def parse(cls, text: str) -> TrafficSplit:
        """``"3:90,4:10"`` (versions) or ``"champion:95,challenger:5"`` (labels)."""
        shares = []
        for part in str(text).split(","):
            target, colon, percent = part.strip().partition(":")
            if not colon:
                raise SplitError(f"traffic split {text!r}: expected VERSION:PERCENT,... (3:90,4:10), got {part!r}")
            try:
                value = float(percent)
            except ValueError:
                raise SplitError(f"traffic split {text!r}: the share of {target} is not a number: {percent!r}") from None
            shares.append((parse_target(target), value))
        return cls(tuple(shares))

    @classmethod
    def of(cls, value: TrafficSplit | str | Mapping[Any, float] | Sequence[tuple[Any, float]]) -> TrafficSplit:
        """A split from its text, a mapping ``{3: 90, 4: 10}`` or ``(target, percent)`` pairs."""
        if isinstance(value, TrafficSplit):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        pairs = value.items() if isinstance(value, Mapping) else value
        return cls(tuple((parse_target(t), p) for t, p in pairs))

    @property
    def targets(self) -> list[Target]:
        return [target for target, _ in self.shares]

    def ranges(self) -> list[tuple[Target, int, int]]:
        """Each target's half-open range of buckets."""
        ranges, start = [], 0
        for target, percent in self.shares:
            end = start + self._buckets(target, percent)
            ranges.append((target, start, end))
            start = end
        return ranges

    def assign(self, frame: pd.DataFrame, keys: Sequence[str]) -> list[Target]:
        """The target of every row of ``frame``, by its key columns ``keys`` (no null key)."""
        from mlpatterns.reproducibility.repeatable_splitting import (
            key_buckets,  # pandas, scikit-learn
        )

        return self._targets(key_buckets(frame, list(keys), BUCKETS))

    def assign_rows(self, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[Target]:
        """The target of every row given as a mapping of column to value (a request's JSON
        objects), without pandas: for the same values, what :meth:`assign` gives for the
        frame of object columns the batch path builds of them (no null key).

        >>> TrafficSplit.parse("3:50,4:50").assign_rows([{"k": "a"}, {"k": "c"}], ["k"])
        [4, 3]
        """
        from mlpatterns.reproducibility.split_keys import row_key_buckets

        return self._targets(row_key_buckets(rows, list(keys), BUCKETS))

    def _targets(self, buckets: np.ndarray) -> list[Target]:
        ranges = self.ranges()
        bounds = np.array([end for _, _, end in ranges])
        return [ranges[i][0] for i in np.searchsorted(bounds, buckets, side="right")]

    def __str__(self) -> str:
        return ",".join(f"{t}:{p:g}" for t, p in self.shares)
