"""How the steps of ``mlpatterns run`` write and read their artifacts (Workflow Pipeline, 25).

Every artifact is plain data in files, never a pickle, so that a cached artifact can be
trusted and read by any worker: tables as Parquet, arrays as ``.npy``/``.npz`` without
object arrays, everything else as JSON (written with sorted keys, so equal content has
equal bytes and so an equal digest).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SPLITS", "read_features", "read_json", "read_prepared", "read_table", "read_trained", "write_features", "write_json",
           "write_trained"]

SPLITS = ("train", "valid", "test")


def write_json(path: Path, value: Any) -> None:
    """``value`` as canonical JSON (sorted keys; dates and paths as text)."""
    path.write_text(json.dumps(value, indent=1, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_features(folder: Path, data: dict[str, Any], context: dict[str, Any]) -> None:
    """Each split's transformed features, target, split keys and neutral mask (``<split>.npz``)."""
    folder.mkdir(parents=True)
    first = data["train"][0]
    write_json(folder / "features.json", {"numeric_names": list(first.numeric_names),
                                          "categorical_names": list(first.categorical_names),
                                          "cardinalities": [int(c) for c in first.cardinalities]})
    for split in SPLITS:
        features, target = data[split]
        arrays = {"numeric": features.numeric, "categorical": features.categorical, "target": target,
                  "groups": np.asarray(context["groups"][split]).astype(str)}
        if context.get("neutral") is not None:
            arrays["neutral"] = context["neutral"][split]
        with open(folder / f"{split}.npz", "wb") as handle:
            np.savez(handle, **arrays)


def read_features(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``data`` and ``context`` that :func:`write_features` wrote (the transform is added by the caller)."""
    from mlpatterns.reproducibility.transform import TransformedFeatures

    names = read_json(folder / "features.json")
    data, groups, neutral = {}, {}, {}
    for split in SPLITS:
        with np.load(folder / f"{split}.npz", allow_pickle=False) as arrays:
            data[split] = (TransformedFeatures(arrays["numeric"], arrays["categorical"], names["numeric_names"],
                                               names["categorical_names"], names["cardinalities"]),
                           arrays["target"])
            groups[split] = arrays["groups"].astype(object)
            if "neutral" in arrays:
                neutral[split] = arrays["neutral"]
    return data, {"groups": groups, "neutral": neutral or None}


def write_trained(folder: Path, trained: Any) -> None:
    """A trained model as the bundle needs it: its files, manifest sections and test outputs."""
    (folder / "files").mkdir(parents=True)
    for name, content in trained.files.items():
        (folder / "files" / name).write_bytes(content)
    write_json(folder / "trained.json", {"model": trained.model, "serving": trained.serving,
                                         "test_metrics": trained.test_metrics})
    arrays = {"test_output": np.asarray(trained.test_output)}
    if trained.valid_output is not None:
        arrays["valid_output"] = np.asarray(trained.valid_output)
    if trained.score_scale is not None:
        arrays["score_scale"] = np.asarray(trained.score_scale)
    with open(folder / "outputs.npz", "wb") as handle:
        np.savez(handle, **arrays)


def read_trained(folder: Path) -> Any:
    """The ``TrainedModel`` that :func:`write_trained` wrote."""
    from mlpatterns.spec.models import TrainedModel

    described = read_json(folder / "trained.json")
    files = {path.name: path.read_bytes() for path in sorted((folder / "files").iterdir())}
    with np.load(folder / "outputs.npz", allow_pickle=False) as arrays:
        outputs = {name: arrays[name] for name in arrays.files}
    return TrainedModel(test_output=outputs["test_output"], files=files, model=described["model"],
                        serving=described["serving"], valid_output=outputs.get("valid_output"),
                        test_metrics=described["test_metrics"], score_scale=outputs.get("score_scale"))


def read_table(folder: Path) -> tuple[Any, dict[str, Any]]:
    """The ``table`` artifact: the rows as read (a DataFrame) and how they were read."""
    import pandas as pd

    return pd.read_parquet(folder / "table.parquet"), read_json(folder / "reading.json")


def read_prepared(folder: Path, spec: Any, table: Any) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """The ``prepared`` artifact over ``table``: the rows with a target, the target, each split's mask, and what
    the split learned (applied to ``spec``)."""
    import numpy as np

    facts = read_json(folder / "prepared.json")
    spec.target.update(facts["target"])
    if facts.get("cutoffs_used") is not None:
        spec.split["cutoffs_used"] = facts["cutoffs_used"]
    with np.load(folder / "rows.npz", allow_pickle=False) as arrays:
        kept, target = arrays["kept"], arrays["target"]
        masks = {s: arrays[s] for s in SPLITS}
    frame = table.iloc[kept].reset_index(drop=True)
    return frame, target, masks, facts
