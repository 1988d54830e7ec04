"""``data.bridge`` in ``mlpatterns run`` (Bridged Schema, 23): which rows train, and the old rows bridged.

:func:`bridge_masks` (the split step) keeps old-schema rows out of the valid and test
splits and keeps ``old_rows`` of them (a seeded choice) in train; :func:`bridge_rows` (the
transform step) fits :class:`~mlpatterns.reproducibility.bridged_schema.SchemaBridge` on
the train split's new-schema rows and draws a new value for each old train row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.spec import Spec, SpecError
from mlpatterns.spec.bridged_schema import old_rows_mask

__all__ = ["bridge_masks", "bridge_rows"]


def bridge_masks(spec: Spec, frame: pd.DataFrame, masks: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """The splits with old rows only in train (at most ``old_rows`` of them), and a line saying so."""
    section = spec.data["bridge"]
    old = old_rows_mask(section, frame[section["column"]])
    masks = {name: mask.copy() for name, mask in masks.items()}
    left_out = int((old & (masks["valid"] | masks["test"])).sum())
    masks["valid"] &= ~old
    masks["test"] &= ~old
    train_old = np.flatnonzero(masks["train"] & old)
    kept = len(train_old)
    if section["old_rows"] != "all" and section["old_rows"] < kept:
        rng = np.random.default_rng(section["seed"])
        dropped = rng.permutation(train_old)[section["old_rows"]:]
        masks["train"][dropped] = False
        kept = section["old_rows"]
    for name in ("valid", "test"):
        if not masks[name].any():
            raise SpecError(f"data.bridge: the {name} split holds no new-schema row (every row of it has an old "
                            f"value of {section['column']!r}); the new schema needs held-out rows")
    message = (f"data.bridge: {int(old.sum()):,} old-schema row(s) of {section['column']!r}; {kept:,} bridged into "
               f"train, {left_out:,} left out of valid/test (measured on the new schema only)")
    return masks, message


def bridge_rows(spec: Spec, frame: pd.DataFrame, masks: dict[str, np.ndarray]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``frame`` with each old train row's value drawn from the train split's new-schema shares; the shares."""
    from mlpatterns.reproducibility.bridged_schema import SchemaBridge

    section = spec.data["bridge"]
    column = section["column"]
    values = frame[column]
    old = old_rows_mask(section, values)
    fit_rows = masks["train"] & ~old & values.notna().to_numpy()
    bridge = SchemaBridge(column=column, mapping=section["mapping"], random_state=section["seed"])
    try:
        bridge.fit(values[fit_rows].astype(str).to_frame())
    except ValueError as error:
        raise SpecError(f"data.bridge: the train split's new-schema rows cannot bridge: {error}") from None
    chosen = masks["train"] & old
    if chosen.any():
        frame = frame.copy()
        drawn = bridge.transform(values[chosen].astype(str).to_frame())[column].to_numpy(dtype=object)
        column_values = frame[column].astype(object).to_numpy().copy()
        column_values[chosen] = drawn
        frame[column] = pd.Series(column_values, index=frame.index, dtype=object)
    return frame, {old_value: shares for old_value, shares in bridge.distributions_.items()}
