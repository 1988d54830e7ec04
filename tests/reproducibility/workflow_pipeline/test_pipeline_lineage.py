"""Workflow Pipeline (25): lineage walks from an artifact back to the source files."""

from __future__ import annotations

import json

import pytest

from mlpatterns.reproducibility.workflow_pipeline import (
    ArtifactLineage,
    Pipeline,
    Step,
    StepLineage,
    Store,
    file_digest,
    format_lineage,
)


def split(inputs, outputs, params):
    rows = inputs["data"].read_text().splitlines()
    outputs["train"].write_text("\n".join(rows[: params["rows"]]))
    outputs["test"].write_text("\n".join(rows[params["rows"] :]))


def fit(inputs, outputs, params):
    outputs["model"].write_text(json.dumps({"n": len(inputs["train"].read_text().splitlines())}))


def evaluate(inputs, outputs, params):
    outputs["report"].write_text(inputs["model"].read_text() + inputs["test"].read_text())
    return {"score": 1.0}


@pytest.fixture
def run_and_store(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("x\n1\n2\n3\n4\n")
    pipeline = Pipeline(
        [
            Step("split", split, {"data": "data"}, ["train", "test"], {"rows": 3}),
            Step("fit", fit, {"train": "train"}, {"model": "model.json"}, {"seed": 0}),
            Step("evaluate", evaluate, {"model": "model.json", "test": "test"}, ["report"]),
        ],
        sources={"data": data},
    )
    store = Store(tmp_path / "store")
    return pipeline.run(store), store, data


def test_lineage_of_an_artifact_reaches_the_source(run_and_store):
    run, store, data = run_and_store
    tree = store.lineage(run.digests["report"])
    assert isinstance(tree, ArtifactLineage) and tree.artifact == "report"
    evaluate_step = tree.producer
    assert evaluate_step.step == "evaluate" and evaluate_step.facts == {"score": 1.0}
    model = evaluate_step.inputs["model"]
    assert model.artifact == "model.json" and model.producer.params == {"seed": 0}
    source = model.producer.inputs["train"].producer.inputs["data"]
    assert source.source and source.producer is None
    assert (source.path, source.size, source.digest) == (
        str(data), data.stat().st_size, file_digest(data)
    )  # fmt: skip
    assert json.loads(json.dumps(tree.to_dict()))["producer"]["step"] == "evaluate"


def test_lineage_by_prefix_key_and_record(run_and_store):
    run, store, data = run_and_store
    assert store.lineage(run.digests["model.json"][:10]).artifact == "model.json"
    by_key = store.lineage(run.records["fit"].key)
    assert isinstance(by_key, StepLineage) and by_key.step == "fit"
    assert store.lineage(run.records["fit"]) == by_key
    assert store.lineage(file_digest(data)).source
    with pytest.raises(LookupError, match="starts with 'ffffffffff'"):
        store.lineage("ffffffffff")
    with pytest.raises(ValueError, match="hex digest"):
        store.lineage("model")


def test_format_lineage_shows_a_shared_step_once(run_and_store):
    run, store, data = run_and_store
    text = format_lineage(store.lineage(run.digests["report"]))
    lines = text.splitlines()
    assert lines[0].startswith("artifact report (sha256 ")
    assert lines[1].strip().startswith("step evaluate (key ")
    assert sum("step split (key" in line and "shown above" not in line for line in lines) == 1
    assert sum("shown above" in line for line in lines) == 1  # reached via model and via test
    assert f"source data (sha256 {file_digest(data)[:12]}, file, 10 B) {data}" in text
    assert "rows=3" in text and "seed=0" in text


def test_lineage_says_when_a_producer_record_was_cleared(run_and_store):
    run, store, data = run_and_store
    store.clear("split")
    tree = store.lineage(run.digests["model.json"])
    train = tree.producer.inputs["train"]
    assert train.producer is None and "record of step 'split'" in train.note
    assert "was cleared" in format_lineage(tree)
