"""The spec's ``data.bridge``: old-schema rows carried into the new schema (Bridged Schema, 23).

::

    data:
      path: births.csv
      bridge:
        column: plurality                    # the categorical column whose values were split
        mapping:                             # each old value -> the new values it was split into
          Multiple(2+): [Twins(2), Triplets(3), Quadruplets(4), Quintuplets(5)]
        old_rows: all                        # or how many bridged old rows to train on (seeded)
        seed: 0

A row holding an old value (a key of ``mapping`` that is not among its own new values) is
an *old-schema* row. ``mlpatterns run`` keeps old rows out of the valid and test splits
(the model is chosen and measured on new-schema rows, as it will serve), bridges the old
train rows probabilistically (a new value drawn from its share among the train split's
new-schema rows, :class:`~mlpatterns.reproducibility.bridged_schema.SchemaBridge`), and
trains on them with the new rows, so the model never learns a value serving will not send.
"""

from __future__ import annotations

from typing import Any

from mlpatterns.spec._checks import expect, mapping

__all__ = ["FIELDS", "old_rows_mask", "parse_bridge"]

FIELDS = ("column", "mapping", "strategy", "old_rows", "seed")


def parse_bridge(value: Any) -> dict[str, Any]:
    """The section checked for shape (the column is checked against the data when it is loaded)."""
    where = "data.bridge"
    section = mapping(value, where, FIELDS)
    for required in ("column", "mapping"):
        expect(required in section, where, f"missing field {required!r}")
    expect(isinstance(section["column"], str) and section["column"] != "", f"{where}.column",
           f"expected the name of the categorical column whose values were split, got {section['column']!r}")
    table = mapping(section["mapping"], f"{where}.mapping")
    expect(bool(table), f"{where}.mapping", "expected at least one old value mapped to its new values")
    for old, targets in table.items():
        expect(isinstance(targets, list) and bool(targets) and all(isinstance(t, (str, int)) for t in targets),
               f"{where}.mapping.{old}", f"expected a non-empty list of the new values, got {targets!r}")
    section["mapping"] = {str(old): [str(t) for t in targets] for old, targets in table.items()}
    for old, targets in section["mapping"].items():
        expect(old not in targets, f"{where}.mapping.{old}", f"the old value {old!r} is also one of its new values "
               f"{targets}: rows holding it could not be told old from new; map only values that were split")
    strategy = section.setdefault("strategy", "probabilistic")
    expect(strategy == "probabilistic", f"{where}.strategy",
           f"expected 'probabilistic' (a new value drawn per old row; the expected one-hot of 'static' needs the "
           f"served bundle to one-hot the column the same way, which only the Python API does), got {strategy!r}")
    rows = section.setdefault("old_rows", "all")
    expect(rows == "all" or (isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0),
           f"{where}.old_rows", f"expected 'all' or a whole number of old rows >= 0, got {rows!r}")
    seed = section.setdefault("seed", 0)
    expect(isinstance(seed, int) and not isinstance(seed, bool), f"{where}.seed", f"expected an integer, got {seed!r}")
    return section


def old_rows_mask(section: dict[str, Any], values: Any) -> Any:
    """Which rows hold an old value (a key of the mapping that is not among its own new values)."""
    import numpy as np

    old = [k for k, targets in section["mapping"].items() if k not in targets]
    texts = values.astype("string")
    return np.asarray(texts.isin(old).fillna(False), dtype=bool)
