"""A four-step pipeline that the crash tests run, SIGKILL and resume (not a test module).

Usage: ``python crashable_pipeline.py STORE DATA RESULT``. Prints ``started`` once its
imports are done, runs load -> split -> train -> evaluate on the CSV file DATA, and writes
the run's statuses, keys and artifact digests to RESULT as JSON.

Environment: ``HANG_IN=<step>`` makes that step write half an output, create the file
named by ``HANG_SIGNAL`` and sleep; ``STEP_SLEEP=<seconds>`` makes every step sleep that long;
the engine's ``MLPATTERNS_PIPELINE_PAUSE_BEFORE_RECORD`` pauses inside a commit. The
tests also import this file to run the same steps in-process (same source, same keys).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from mlpatterns.reproducibility.workflow_pipeline import Pipeline, Step, Store


def pause(outputs, params):
    time.sleep(float(os.environ.get("STEP_SLEEP", "0")))
    if os.environ.get("HANG_IN") == params["name"]:
        for path in outputs.values():
            path.write_text("half")
        Path(os.environ["HANG_SIGNAL"]).touch()
        time.sleep(600)


def load(inputs, outputs, params):
    pause(outputs, params)
    with open(inputs["data"], newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["y"].strip()]
    with open(outputs["table.csv"], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "x", "y"])
        writer.writeheader()
        writer.writerows(rows)
    return {"rows": len(rows)}


def split(inputs, outputs, params):
    pause(outputs, params)
    outputs["splits"].mkdir()
    with open(inputs["table"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    for name, keep in (("train", True), ("test", False)):
        chosen = [r for r in rows if (hashlib.md5(r["id"].encode()).digest()[0] % 10 < 8) == keep]
        with open(outputs["splits"] / f"{name}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["id", "x", "y"])
            writer.writeheader()
            writer.writerows(chosen)
    return {}


def train(inputs, outputs, params):
    pause(outputs, params)
    with open(inputs["splits"] / "train.csv", newline="") as handle:
        ys = [float(row["y"]) for row in csv.DictReader(handle)]
    outputs["model.json"].write_text(json.dumps({"mean": sum(ys) / len(ys)}))


def evaluate(inputs, outputs, params):
    pause(outputs, params)
    mean = json.loads(inputs["model"].read_text())["mean"]
    with open(inputs["splits"] / "test.csv", newline="") as handle:
        errors = [abs(float(row["y"]) - mean) for row in csv.DictReader(handle)]
    outputs["metrics.json"].write_text(json.dumps({"mae": sum(errors) / len(errors)}))
    return {"mae": sum(errors) / len(errors)}


def pipeline(data: Path) -> Pipeline:
    return Pipeline(
        [
            Step("load", load, {"data": "data"}, ["table.csv"], {"name": "load"}),
            Step("split", split, {"table": "table.csv"}, ["splits"],
                 {"name": "split"}),
            Step("train", train, {"splits": "splits"}, ["model.json"], {"name": "train"}),
            Step("evaluate", evaluate, {"model": "model.json", "splits": "splits"},
                 ["metrics.json"], {"name": "evaluate"}),
        ],
        sources={"data": data},
    )  # fmt: skip


def summary(run) -> dict:
    return {
        "statuses": run.statuses,
        "keys": {name: record.key for name, record in run.records.items()},
        "digests": run.digests,
    }


if __name__ == "__main__":
    store, data, result = sys.argv[1:4]
    print("started", flush=True)
    run = pipeline(Path(data)).run(Store(store))
    Path(result).write_text(json.dumps(summary(run)))
