"""Workflow Pipeline (25): DAG checks, content-addressed caching, dry runs and step contracts."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from mlpatterns.reproducibility.workflow_pipeline import (
    Pipeline,
    Step,
    StepError,
    Store,
    file_digest,
    format_plan,
)


def copy(inputs, outputs, params):
    shutil.copyfile(inputs["source"], outputs["copy"])


def column_sum(inputs, outputs, params):
    lines = inputs["table"].read_text().splitlines()[1:]
    total = sum(float(line.split(",")[params["column"]]) for line in lines)
    outputs["total"].write_text(f"{total * params.get('scale', 1)}\n")
    return {"rows": len(lines)}


def parity(inputs, outputs, params):
    value = float(inputs["total"].read_text())
    outputs["parity"].write_text("even" if value % 2 == 0 else "odd")


def nothing(inputs, outputs, params):
    pass


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("id,a,b\n1,10,3\n2,20,5\n3,30,7\n")
    return path


def chain(csv_file, **params):
    return Pipeline(
        [
            Step("parity", parity, {"total": "total"}, ["parity"]),  # declared first, runs last
            Step("sum", column_sum, {"table": "data"}, ["total"], {"column": 1, **params}),
        ],
        sources={"data": csv_file},
    )


def test_runs_in_dependency_order_and_reuses_records(tmp_path, csv_file):
    events = []
    pipeline = chain(csv_file)
    assert [step.name for step in pipeline.steps] == ["sum", "parity"]
    first = pipeline.run(tmp_path / "store", progress=lambda *event: events.append(event))
    assert first.statuses == {"sum": "ran", "parity": "ran"}
    assert first.records["sum"].facts == {"rows": 3}
    assert first.artifacts["total"].read_text() == "60.0\n"
    assert first.artifacts["parity"].read_text() == "even"
    assert first.digests["total"] == file_digest(first.artifacts["total"])
    assert (
        first.artifacts["total"] == tmp_path / "store/artifacts" / first.digests["total"] / "total"
    )
    assert events == [("sum", "start"), ("sum", "done"), ("parity", "start"), ("parity", "done")]
    lines = []
    second = pipeline.run(tmp_path / "store", log=lines.append)
    assert second.statuses == {"sum": "cached", "parity": "cached"}
    assert second.digests == first.digests and second.records == first.records
    assert [line.split(":")[0] for line in lines] == ["sum", "parity"]
    assert all("cached" in line for line in lines)


def test_a_dry_run_writes_nothing(tmp_path, csv_file):
    plan = chain(csv_file).plan(tmp_path / "store")
    assert [(p.status, p.reasons) for p in plan] == [
        ("run", ("no record for this key",)),
        ("run", ("upstream step sum reruns",)),
    ]
    assert not (tmp_path / "store").exists()


def test_one_changed_csv_cell_misses_and_a_moved_or_touched_file_hits(tmp_path, csv_file):
    store = Store(tmp_path / "store")
    chain(csv_file).run(store)
    moved = tmp_path / "elsewhere.csv"
    shutil.copyfile(csv_file, moved)
    os.utime(moved, ns=(1, 1))
    assert {p.status for p in chain(moved).plan(store)} == {"cached"}  # path, mtime: not keys
    csv_file.write_text(csv_file.read_text().replace("2,20,5", "2,21,5"))  # one cell
    plan = chain(csv_file).plan(store)
    assert [(p.step, p.status, p.reasons) for p in plan] == [
        ("sum", "run", ("input table changed",)),
        ("parity", "run", ("upstream step sum reruns",)),
    ]
    assert plan[1].key is None
    assert "upstream step sum reruns" in format_plan(plan)
    run = chain(csv_file).run(store)
    assert run.statuses == {"sum": "ran", "parity": "ran"}
    assert run.artifacts["parity"].read_text() == "odd"


def test_params_changes_are_named_and_unchanged_outputs_stop_the_rerun(tmp_path, csv_file):
    store = Store(tmp_path / "store")
    chain(csv_file).run(store)
    plan = chain(csv_file, column=2, scale=1).plan(store)
    assert plan[0].reasons == ("params changed: column, scale",)
    # scale=1 changes the key but not the bytes: parity is reused after sum reruns
    run = chain(csv_file, scale=1).run(store)
    assert run.statuses == {"sum": "ran", "parity": "cached"}


def test_force_reruns_a_step_and_names_unknown_steps(tmp_path, csv_file):
    store = Store(tmp_path / "store")
    first = chain(csv_file).run(store)
    plan = chain(csv_file).plan(store, force=["sum"])
    assert [(p.status, p.reasons) for p in plan] == [
        ("run", ("forced",)),
        ("run", ("upstream step sum reruns",)),
    ]
    run = chain(csv_file).run(store, force="sum")
    assert run.statuses == {"sum": "ran", "parity": "cached"}
    assert run.records["sum"].key == first.records["sum"].key
    assert run.records["sum"].finished > first.records["sum"].finished
    assert chain(csv_file).run(store, force=True).statuses == {"sum": "ran", "parity": "ran"}
    with pytest.raises(ValueError, match=r"unknown steps \['train'\]"):
        chain(csv_file).plan(store, force=["train"])


def test_editing_the_step_code_or_a_listed_module_misses(tmp_path, monkeypatch, csv_file):
    module = tmp_path / "wp_edited_step.py"
    helper = tmp_path / "wp_edited_helper.py"
    module.write_text(
        "def total(inputs, outputs, params):\n"
        "    outputs['out'].write_text(str(len(inputs['data'].read_bytes())))\n"
    )
    helper.write_text("FACTOR = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    edited = importlib.import_module("wp_edited_step")

    def build():
        step = Step("total", edited.total, {"data": "data"}, ["out"], code=["wp_edited_helper"])
        return Pipeline([step], sources={"data": csv_file})

    store = Store(tmp_path / "store")
    assert "wp_edited_helper" not in sys.modules  # hashed without importing it
    assert build().run(store).statuses == {"total": "ran"}
    assert "wp_edited_helper" not in sys.modules
    assert build().run(store).statuses == {"total": "cached"}
    module.write_text(module.read_text().replace("len(", "2 * len("))
    edited = importlib.reload(edited)
    assert build().plan(store)[0].reasons == ("code of step changed",)
    run = build().run(store)
    assert run.statuses == {"total": "ran"}
    assert run.artifacts["out"].read_text() == str(2 * csv_file.stat().st_size)
    helper.write_text("FACTOR = 2\n")
    assert build().plan(store)[0].reasons == ("code of module wp_edited_helper changed",)


def test_directory_artifacts_output_mappings_and_shared_content(tmp_path, csv_file):
    def tree(inputs, outputs, params):
        outputs["folder"].mkdir()
        (outputs["folder"] / "empty").mkdir()
        (outputs["folder"] / "a.txt").write_text(params["text"])

    def listing(inputs, outputs, params):
        names = sorted(p.relative_to(inputs["tree"]).as_posix() for p in inputs["tree"].rglob("*"))
        outputs["names"].write_text("\n".join(names))
        return {"names": names}

    pipeline = Pipeline(
        [
            Step("tree", tree, outputs={"folder": "tree.x"}, params={"text": "hi"}),
            Step("twin", copy, {"source": "data"}, {"copy": "twin.csv"}),
            Step("copy", copy, {"source": "data"}, {"copy": "copy.csv"}),
            Step("list", listing, {"tree": "tree.x"}, {"names": "names.txt"}),
        ],
        sources={"data": csv_file},
    )
    run = pipeline.run(tmp_path / "store")
    assert run.artifacts["tree.x"].is_dir() and run.artifacts["tree.x"].name == "tree.x"
    assert run.records["list"].facts == {"names": ["a.txt", "empty"]}
    assert run.records["tree"].outputs["folder"]["kind"] == "directory"
    # identical bytes share one digest folder, each under its own name
    assert run.digests["twin.csv"] == run.digests["copy.csv"] == run.digests["data"]
    assert run.artifacts["twin.csv"].parent == run.artifacts["copy.csv"].parent
    assert run.artifacts["copy.csv"].name == "copy.csv"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([Step("a", nothing, outputs=["x"]), Step("a", nothing, outputs=["y"])], "two steps are named 'a'"),
        ([Step("a", nothing, outputs=["x"]), Step("b", nothing, outputs=["x"])], "'x' is produced by steps 'a' and 'b'"),
        ([Step("a", nothing, {"i": "nope"})], "step 'a' reads artifact 'nope', which no step produces"),
        ([Step("a", nothing, {"i": "y"}, ["x"]), Step("b", nothing, {"i": "x"}, ["y"])], "cycle: a -> b -> a"),
        ([Step("a", nothing, outputs=["data"])], "'data' is a source and is produced by step 'a'"),
    ],
)  # fmt: skip
def test_invalid_pipelines_are_refused_naming_steps_and_artifacts(steps, message, csv_file):
    with pytest.raises(ValueError, match=message):
        Pipeline(steps, sources={"data": csv_file})


def test_invalid_steps_are_refused():
    with pytest.raises(ValueError, match="not a valid name"):
        Step("a/b", nothing)
    with pytest.raises(ValueError, match="params must be JSON-able"):
        Step("a", nothing, params={"when": object()})
    with pytest.raises(ValueError, match="reads and writes"):
        Step("a", nothing, {"i": "x"}, ["x"])
    with pytest.raises(TypeError, match="list of names"):
        Step("a", nothing, outputs="x")


def test_a_failing_step_records_nothing_and_its_error_names_it(tmp_path, csv_file):
    def broken(inputs, outputs, params):
        outputs["out"].write_text("partial")
        raise KeyError("column")

    def lazy(inputs, outputs, params):
        return None

    def chatty(inputs, outputs, params):
        outputs["out"].write_text("x")
        return {"value": object()}

    store = Store(tmp_path / "store")
    for function, message in [
        (broken, r"step 'bad': failed: KeyError: 'column'"),
        (lazy, "did not write its output 'out'"),
        (chatty, "facts that are not JSON-able"),
    ]:
        events = []
        pipeline = Pipeline([Step("bad", function, outputs=["out"])])
        with pytest.raises(StepError, match=message) as raised:
            pipeline.run(store, progress=lambda *event, events=events: events.append(event))
        assert raised.value.step == "bad"
        assert events == [("bad", "start"), ("bad", "failed")]
        assert not list(store.records()) and not list((store.root / "tmp").iterdir())
    assert not list((store.root / "artifacts").iterdir())


def test_a_source_rewritten_while_a_step_reads_it_is_not_recorded(tmp_path, csv_file):
    def rewrite(inputs, outputs, params):
        inputs["data"].write_text("id,a,b\n9,9,9\n")
        outputs["out"].write_text("x")

    with pytest.raises(StepError, match="changed while the step ran"):
        Pipeline([Step("s", rewrite, {"data": "data"}, ["out"])], {"data": csv_file}).run(
            tmp_path / "store"
        )
    assert not list(Store(tmp_path / "store").records())


def test_a_missing_artifact_is_a_miss_with_its_reason(tmp_path, csv_file):
    store = Store(tmp_path / "store")
    first = chain(csv_file).run(store)
    shutil.rmtree(first.artifacts["parity"].parent)
    plan = chain(csv_file).plan(store)
    assert plan[0].status == "cached"
    assert plan[1].status == "run" and "artifact 'parity' (parity) is missing" in plan[1].reasons[0]
    assert chain(csv_file).run(store).statuses == {"sum": "cached", "parity": "ran"}
    assert first.artifacts["parity"].read_text() == "even"


def test_records_hold_lineage_and_timings(tmp_path, csv_file):
    run = chain(csv_file).run(tmp_path / "store")
    record = run.records["sum"]
    saved = json.loads((tmp_path / f"store/steps/{record.key}.json").read_text())
    assert saved["step"] == "sum" and saved["params"] == {"column": 1}
    assert saved["inputs"]["table"] == {
        "artifact": "data",
        "digest": file_digest(csv_file),
        "kind": "file",
        "size": csv_file.stat().st_size,
        "producer": None,
        "path": str(csv_file),
    }
    assert saved["code"]["name"].endswith(":column_sum")
    assert set(saved["environment"]) == {"python", "platform", "packages", "git_commit"}
    assert saved["environment"]["packages"]["mlpatterns"]
    assert record.start_time <= record.end_time and record.duration_s >= 0
    latest = json.loads((tmp_path / "store/latest/sum.json").read_text())
    assert latest["key"] == record.key


def test_no_printing_and_a_clear_error_for_unknown_engines(tmp_path, csv_file, capsys):
    chain(csv_file).run(tmp_path / "store")
    assert capsys.readouterr() == ("", "")
    with pytest.raises(ValueError, match="engine must be 'local' or 'ray'"):
        chain(csv_file).run(tmp_path / "store", engine="spark")


def test_missing_ray_names_the_extra(tmp_path, csv_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"mlpatterns\[pipeline\]"):
        chain(csv_file).run(tmp_path / "store", engine="ray")


def test_a_missing_source_is_named(tmp_path):
    pipeline = Pipeline(
        [Step("s", copy, {"source": "data"}, ["copy"])], {"data": tmp_path / "no.csv"}
    )
    with pytest.raises(FileNotFoundError, match="source 'data' does not exist"):
        pipeline.plan(tmp_path / "store")


def test_engine_sources_are_hashed_by_their_bytes(tmp_path):
    big = Path(tmp_path / "big.bin")
    big.write_bytes(os.urandom(3 << 20))
    import hashlib

    assert file_digest(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_several_upstream_reruns_are_named_in_one_reason(tmp_path, csv_file):
    pipeline = Pipeline(
        [
            Step("left", copy, {"source": "data"}, {"copy": "left"}),
            Step("right", copy, {"source": "data"}, {"copy": "right"}),
            Step("join", column_sum, {"table": "left", "other": "right"}, ["total"], {"column": 1}),
        ],
        sources={"data": csv_file},
    )
    assert pipeline.plan(tmp_path / "store")[2].reasons == ("upstream steps left, right rerun",)
