"""``report.html``: the run's ``report.json`` as one self-contained page a person reads in a browser.

``report.json`` holds everything a run measured, for programs; a person deciding whether to
ship the model wants it laid out: the model against the Heuristic Benchmark (28) in the
problem's units, the metrics side by side, the learning curves, calibration, confusion or
residual plots, feature importance (Explainable Predictions, 29), the slices of the
Fairness Lens (30) and the model cards, drift against the previous run and the registry's
lineage (Model Versioning, 27), and what each step of the Workflow Pipeline (25) took.

The page is rendered with a jinja2 template (autoescaped) and needs no network: its CSS is
inline, every plot is embedded as a ``data:`` URI, it runs no script. Every number in it is
machine-checkable: the element showing it carries ``data-key`` (where it is in
``report.json``, see :func:`lookup`) and ``data-value`` (its exact JSON text), and shows
:func:`format_value` of it. A section whose key is absent from the report is left out; a
key the page does not know is shown generically at the end, so nothing is hidden.
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from typing import Any

from mlpatterns.metrics import HEADLINE_METRICS, METRIC_DIRECTIONS

__all__ = ["format_value", "key_of", "lookup", "render_report_html", "write_report_html"]

#: metric name -> True when higher is better (the metrics table marks the best of each row): mlpatterns.metrics's
HIGHER_IS_BETTER = {name: direction == "maximize" for name, direction in METRIC_DIRECTIONS.items()}
_IMAGES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
_MAX_IMAGE_BYTES = 20 * 2 ** 20
_WIDE_PIXELS = 700  # a plot wider than this spans the page's width instead of one grid cell
_MAX_ROWS = 200  # a longer list shows its first rows and says how many more report.json holds
_PLAIN = re.compile(r"[A-Za-z0-9_\-]+")
_SEGMENT = re.compile(r'\.?(?:\[("(?:[^"\\]|\\.)*")\]|([A-Za-z0-9_\-]+))')
#: report keys with a section of their own, in the page's order (others go to "More")
_KNOWN = ("name", "task", "rows", "dropped_target_rows", "metrics", "heuristic_benchmark", "plots", "diagnostics",
          "explanations", "fairness", "model_cards", "data_anomalies", "skew", "registered", "bundles", "tuning",
          "two_phase", "bridge", "categorical_encodings", "timings_seconds", "steps")


def format_value(value: Any) -> str:
    """How the page shows a JSON value: integers with thousands separators, floats to 4 significant
    digits (large ones as whole numbers), booleans as yes/no, null as an em dash.

    >>> [format_value(v) for v in (5149, 0.25738636847993845, 4.177e-06, 123456.7, 1.0, True, None, "a")]
    ['5,149', '0.2574', '4.177e-06', '123,457', '1', 'yes', '—', 'a']
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    return str(value)


def key_of(path: tuple[Any, ...] | list[Any]) -> str:
    """The ``data-key`` of a place in the report: its keys joined by dots, a key that is not plain
    (a dot, a space...) written as a JSON string in brackets.

    >>> key_of(("metrics", "gradient_boosting", "roc_auc")), key_of(("timings_seconds", "train.gbm", 0))
    ('metrics.gradient_boosting.roc_auc', 'timings_seconds["train.gbm"].0')
    """
    parts = []
    for segment in path:
        text = str(segment)
        parts.append(("." if parts else "") + text if _PLAIN.fullmatch(text) else f"[{json.dumps(text)}]")
    return "".join(parts)


def lookup(report: Any, key: str) -> Any:
    """The value at ``key`` (a :func:`key_of`) in ``report``; ``KeyError`` when there is none.

    >>> lookup({"a": {"x.y": [1, 2]}}, 'a["x.y"].1')
    2
    """
    value, position = report, 0
    while position < len(key):
        match = _SEGMENT.match(key, position)
        if match is None or match.end() == position:
            raise KeyError(f"{key!r}: not a report key at position {position}")
        segment = json.loads(match.group(1)) if match.group(1) is not None else match.group(2)
        position = match.end()
        if isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        elif isinstance(value, dict) and segment in value:
            value = value[segment]
        else:
            raise KeyError(f"{key!r}: no {segment!r} in the report")
    return value


def render_report_html(report: dict[str, Any], output_dir: Path) -> str:
    """The page for ``report`` (the dict written to ``report.json``) as text; plot paths that are relative
    are read from ``output_dir``. Needs jinja2 (the ``report`` extra)."""
    try:
        import jinja2
    except ImportError as error:
        raise ImportError("report.html needs jinja2: pip install 'mlpatterns[report]'") from error

    environment = jinja2.Environment(loader=jinja2.PackageLoader("mlpatterns.lifecycle", "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     lstrip_blocks=True)
    page = _Page(report, Path(output_dir))
    return environment.get_template("report.html.j2").render(
        title=f"{report.get('name', 'run')}: run report", name=report.get("name"),
        summary=page.summary(), sections=page.sections())


def write_report_html(report: dict[str, Any], output_dir: Path) -> Path:
    """Render ``report`` and write ``<output_dir>/report.html`` through a temporary file renamed into place
    (a reader never sees half a page; a failure leaves the old one). Returns the page's path."""
    from mlpatterns.lifecycle.outputs import write_text_atomically

    path = Path(output_dir) / "report.html"
    write_text_atomically(path, render_report_html(report, output_dir))
    return path


class _Page:
    """Turns the report into the template's nodes: plain dicts with a ``kind``."""

    def __init__(self, report: dict[str, Any], output_dir: Path):
        self.report, self.output_dir = report, output_dir

    # -- the generic renderer: any JSON value to nodes --------------------------------------------------
    def value(self, value: Any, path: tuple[Any, ...]) -> dict[str, Any]:
        if isinstance(value, dict):
            return self._dict(value, path)
        if isinstance(value, list):
            return self._list(value, path)
        return {"kind": "value", "key": key_of(path), "json": json.dumps(value), "text": format_value(value),
                "numeric": isinstance(value, (int, float)) and not isinstance(value, bool)}

    def _dict(self, value: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
        if not value:
            return {"kind": "empty", "text": "none"}
        scalars, children, figures = [], [], None
        for name, item in value.items():
            if name == "plots" and isinstance(item, dict) and item and all(isinstance(v, str) for v in item.values()):
                figures = self.figures(item, (*path, name))
            elif name == "counts" and _labels_fit(value, item):
                children.append(("counts (rows: truth, columns: decision)", self._matrix(
                    item, (*path, name), value["labels"], value.get("truth_labels", value["labels"]))))
            elif name in ("labels", "truth_labels") and _labels_fit(value, value.get("counts")):
                continue  # the matrix's headers
            elif _scalar(item) or item in ({}, []):  # an empty list or dict is a "none" among the fields
                scalars.append((_label(name), self.value(item, (*path, name))))
            else:
                children.append((_label(name), self.value(item, (*path, name))))
        if not scalars and children and all(isinstance(v, dict) and "plots" not in v for v in value.values()) \
                and _rows_of_records(value):  # {name: {field: ...}}: one row per name
            return self._table(list(value.items()), path, labelled=True)
        return {"kind": "group", "figures": figures, "fields": scalars, "children": children}

    def _list(self, value: list[Any], path: tuple[Any, ...]) -> dict[str, Any]:
        if not value:
            return {"kind": "empty", "text": "none"}
        if all(_scalar(item) for item in value):  # sentences as bullets, short values on one line
            sentences = any(isinstance(item, str) and len(item) > 40 for item in value)
            return {"kind": "bullets" if sentences else "inline", "more": max(0, len(value) - _MAX_ROWS),
                    "items": [self.value(item, (*path, i)) for i, item in enumerate(value[:_MAX_ROWS])]}
        if _is_matrix(value):
            return self._matrix(value, path)
        if all(isinstance(item, dict) for item in value) and _rows_of_records(dict(enumerate(value))):
            return self._table(list(enumerate(value)), path, labelled=False)
        return {"kind": "list", "items": [self.value(item, (*path, i)) for i, item in enumerate(value[:_MAX_ROWS])],
                "more": max(0, len(value) - _MAX_ROWS)}

    def _table(self, rows: list[tuple[Any, dict[str, Any]]], path: tuple[Any, ...], labelled: bool) -> dict[str, Any]:
        columns: list[tuple[Any, ...]] = []
        for _, record in rows:
            for column in _flat_columns(record):
                if column not in columns:
                    columns.append(column)
        body = []
        for name, record in rows[:_MAX_ROWS]:
            cells = []
            for column in columns:
                try:
                    item = _dig(record, column)
                except KeyError:
                    cells.append(None)
                    continue
                cells.append(self.value(item, (*path, name, *column)))
            body.append((str(name) if labelled else None, cells))
        return {"kind": "table", "columns": [" ".join(_label(c) for c in column) for column in columns],
                "rows": body, "labelled": labelled, "more": max(0, len(rows) - _MAX_ROWS)}

    def _matrix(self, value: list[list[Any]], path: tuple[Any, ...], labels: list[Any] | None = None,
                row_labels: list[Any] | None = None) -> dict[str, Any]:
        return {"kind": "matrix", "labels": [str(label) for label in labels] if labels else None,
                "row_labels": [str(label) for label in row_labels] if row_labels else None,
                "rows": [[self.value(item, (*path, i, j)) for j, item in enumerate(row)]
                         for i, row in enumerate(value[:_MAX_ROWS])], "more": max(0, len(value) - _MAX_ROWS)}

    def figures(self, plots: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
        """Each plot embedded as a data URI; a missing or unreadable file becomes a note."""
        items = []
        for name, where in plots.items():
            if not isinstance(where, str):
                continue
            uri, note, wide = self._embed(where)
            items.append({"title": _label(name), "key": key_of((*path, name)), "uri": uri, "note": note,
                          "wide": wide})
        return {"kind": "figures", "items": items}

    def _embed(self, where: str) -> tuple[str | None, str | None, bool]:
        """The plot as a data URI (or a note saying why not), and whether it is wider than a grid cell."""
        path = Path(where)
        candidates = [path] if path.is_absolute() else [self.output_dir / path]
        candidates.append(self.output_dir / "plots" / path.name)  # a report folder moved elsewhere
        mime = _IMAGES.get(path.suffix.lower())
        if mime is None:
            return None, f"{where}: not an image the page can show", False
        for candidate in candidates:
            try:
                if candidate.is_file() and candidate.stat().st_size <= _MAX_IMAGE_BYTES:
                    content = candidate.read_bytes()
                    return (f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}", None,
                            _png_width(content) > _WIDE_PIXELS)
            except OSError:
                continue
        return None, f"plot file {where} is missing or unreadable; it is left out", False

    # -- the sections -------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        report = self.report
        facts = [(_label(name), self.value(report[name], (name,))) for name in ("name", "task", "dropped_target_rows")
                 if name in report and _scalar(report[name])]
        rows = report.get("rows")
        order = {"train": 0, "valid": 1, "test": 2}
        splits = [(split, self.value(rows[split], ("rows", split))) for split in sorted(rows, key=lambda s: (
            order.get(s, 3), s))] if isinstance(rows, dict) else []
        return {"facts": facts, "splits": splits, "best": self._best()}

    def _best(self) -> dict[str, Any] | None:
        metrics = self.report.get("metrics")
        if not isinstance(metrics, dict):
            return None
        models = {name: values for name, values in metrics.items()
                  if name != "heuristic_benchmark" and isinstance(values, dict)}
        benchmark = self.report.get("heuristic_benchmark") if isinstance(self.report.get("heuristic_benchmark"),
                                                                          dict) else {}
        metric = benchmark.get("metric")
        higher = benchmark.get("metric_direction", "maximize") == "maximize" if metric else None
        if metric is None:  # no benchmark section: the task's headline metric
            metric = HEADLINE_METRICS.get(str(self.report.get("task")))
            higher = HIGHER_IS_BETTER.get(metric, True)
        scored = {name: values[metric] for name, values in models.items() if _number(values.get(metric))}
        if not scored:
            return None
        best = (max if higher else min)(scored, key=scored.__getitem__)
        heuristic = metrics.get("heuristic_benchmark", {})
        compared = (benchmark.get("models") or {}).get(best) or {}
        gain = compared.get("gain")
        return {"model": best, "metric": metric, "direction": "higher is better" if higher else "lower is better",
                "value": self.value(scored[best], ("metrics", best, metric)),
                "heuristic": self.value(heuristic[metric], ("metrics", "heuristic_benchmark", metric))
                if isinstance(heuristic, dict) and _number(heuristic.get(metric)) else None,
                "gain": self.value(gain, ("heuristic_benchmark", "models", best, "gain")) if _number(gain) else None,
                "message": self.value(compared["message"], ("heuristic_benchmark", "models", best, "message"))
                if isinstance(compared.get("message"), str) else None,
                "beats": compared.get("beats_margin")}

    def sections(self) -> list[dict[str, Any]]:
        report, sections = self.report, []

        def add(anchor: str, title: str, body: list[dict[str, Any]], intro: str = "") -> None:
            sections.append({"id": anchor, "title": title, "intro": intro, "body": body})

        if isinstance(report.get("metrics"), dict):
            add("metrics", "Metrics on the test split", [self._metrics_table()],
                "Each model against the heuristic benchmark; the best value of a row is in bold.")
        if "heuristic_benchmark" in report:
            add("benchmark", "Heuristic benchmark", [self.value(report["heuristic_benchmark"],
                                                                ("heuristic_benchmark",))],
                "The simple rules tried, the one chosen on the valid split, and each model's gain over it.")
        if isinstance(report.get("plots"), dict) and report["plots"]:
            add("learning-curves", "Learning curves", [self.figures(report["plots"], ("plots",))])
        for key, anchor, title, intro in (
                ("diagnostics", "diagnostics", "Calibration, confusion and residuals",
                 "Where each model errs on the test split."),
                ("explanations", "explanations", "Feature importance",
                 "Global importance by raw input column, relative to the stated baseline (Explainable Predictions)."),
                ("model_cards", "model-cards", "Model cards", "")):
            if isinstance(report.get(key), dict) and report[key]:
                add(anchor, title, self._per_model(report[key], (key,)), intro)
        if isinstance(report.get("fairness"), dict) and report["fairness"]:
            fairness = report["fairness"]
            body = [self._titled("Data before training", self.value(fairness["data"], ("fairness", "data")))] \
                if "data" in fairness else []
            if isinstance(fairness.get("models"), dict):
                body += self._per_model(fairness["models"], ("fairness", "models"))
            body += [self._titled(_label(k), self.value(v, ("fairness", k))) for k, v in fairness.items()
                     if k not in ("data", "models")]
            add("fairness", "Fairness slices", body, "Counts and intervals per sensitive slice (Fairness Lens).")
        if "data_anomalies" in report:
            anomalies = report["data_anomalies"]
            body = [self.value(anomalies, ("data_anomalies",))] if anomalies else [
                {"kind": "text", "text": "No anomaly: the data matches the previous run's statistics, "
                                         "or there was no previous run in this folder to compare with."}]
            add("drift", "Drift against the previous run", body)
        if "skew" in report:
            add("skew", "Training-serving skew", [self.value(report["skew"], ("skew",))],
                "The bundle re-scores the test rows as serving reads them.")
        lineage = [self._titled(_label(k), self.value(report[k], (k,))) for k in ("registered", "bundles")
                   if k in report]
        if lineage:
            add("lineage", "Registry and lineage", lineage)
        for key in ("tuning", "two_phase", "bridge", "categorical_encodings"):
            if key in report:
                add(key.replace("_", "-"), _label(key).capitalize(),
                    [*self._folder_figures(report[key], (key,)), self.value(report[key], (key,))])
        if "steps" in report or "timings_seconds" in report:
            add("steps", "Steps and timings", [self._steps_table()])
        other = [self._titled(_label(k), self.value(v, (k,))) for k, v in report.items() if k not in _KNOWN]
        if other:
            add("more", "More", other)
        return sections

    def _folder_figures(self, section: Any, path: tuple[Any, ...]) -> list[dict[str, Any]]:
        """The plots in a section's published ``folder`` (Two-Phase Predictions' trade-off curve)."""
        folder = section.get("folder") if isinstance(section, dict) else None
        if not isinstance(folder, str):
            return []
        try:
            images = sorted(Path(folder).glob("*.png")) if Path(folder).is_dir() else []
        except OSError:
            return []
        return [self.figures({image.stem: str(image) for image in images}, (*path, "folder"))] if images else []

    def _titled(self, title: str, node: dict[str, Any]) -> dict[str, Any]:
        return {"kind": "titled", "title": title, "node": node}

    def _per_model(self, section: dict[str, Any], path: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [self._titled(str(name), self.value(value, (*path, name))) for name, value in section.items()]

    def _metrics_table(self) -> dict[str, Any]:
        metrics = {k: v for k, v in self.report["metrics"].items() if isinstance(v, dict)}
        columns = [c for c in ("heuristic_benchmark", *metrics) if c in metrics]
        columns = list(dict.fromkeys(columns))
        names = list(dict.fromkeys(m for c in columns for m in metrics[c]))
        rows = []
        for metric in names:
            cells = [self.value(metrics[c][metric], ("metrics", c, metric)) if metric in metrics[c] else None
                     for c in columns]
            higher = HIGHER_IS_BETTER.get(metric)
            numbers = [metrics[c].get(metric) for c in columns]
            valid = [x for x in numbers if _number(x) and not math.isnan(x)]
            if higher is not None and len(valid) > 1:
                best = max(valid) if higher else min(valid)
                for cell, number in zip(cells, numbers, strict=True):
                    if cell is not None and number == best:
                        cell["best"] = True
            rows.append((metric, cells))
        return {"kind": "table", "columns": [_label(c) for c in columns], "rows": rows, "labelled": True, "more": 0,
                "corner": "metric"}

    def _steps_table(self) -> dict[str, Any]:
        steps, timings = self.report.get("steps") or {}, self.report.get("timings_seconds") or {}
        rows = []
        for step in dict.fromkeys([*steps, *timings]):
            rows.append((step, [self.value(steps[step], ("steps", step)) if step in steps else None,
                                self.value(timings[step], ("timings_seconds", step)) if step in timings else None]))
        total = sum(v for v in timings.values() if _number(v))
        rows.append(("total", [None, {"kind": "value", "key": None, "json": None, "text": format_value(round(total, 2)),
                                      "numeric": True}]))
        return {"kind": "table", "columns": ["status", "seconds"], "rows": rows, "labelled": True, "more": 0,
                "corner": "step"}


def _png_width(content: bytes) -> int:
    """A PNG's width in pixels from its header (0 for anything else)."""
    if content[:8] != b"\x89PNG\r\n\x1a\n" or len(content) < 24:
        return 0
    return int.from_bytes(content[16:20], "big")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _label(name: Any) -> str:
    return str(name).replace("_", " ")


def _is_matrix(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(row, list) and row and all(_number(x) for x in row) and len(row) == len(value[0])
        for row in value)


def _labels_fit(record: dict[str, Any], counts: Any) -> bool:
    """Whether ``record`` holds a confusion matrix: ``counts`` with a column per ``labels`` and a row per
    ``truth_labels`` (the same labels when absent)."""
    labels, rows = record.get("labels"), record.get("truth_labels", record.get("labels"))
    return _is_matrix(counts) and isinstance(labels, list) and isinstance(rows, list) \
        and len(labels) == len(counts[0]) and len(rows) == len(counts)


def _flat_columns(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The columns of a record, a nested dict of scalars spread into its own columns (``test rmse``)."""
    columns: list[tuple[Any, ...]] = []
    for name, value in record.items():
        if isinstance(value, dict) and value and all(_scalar(v) for v in value.values()) and len(value) <= 8:
            columns += [(name, inner) for inner in value]
        else:
            columns.append((name,))
    return columns


def _dig(record: dict[str, Any], column: tuple[Any, ...]) -> Any:
    value: Any = record
    for part in column:
        if not isinstance(value, dict) or part not in value:
            raise KeyError(part)
        value = value[part]
    return value


def _rows_of_records(value: dict[Any, Any]) -> bool:
    """Whether records (dicts) share their shape enough to be rows of one table: at most 40 columns, half of
    them in every record, and mostly scalar cells."""
    shapes = [set(_flat_columns(record)) for record in value.values()]
    columns, common = set().union(*shapes), set.intersection(*shapes)
    cells = [_dig(r, c) for r in value.values() for c in _flat_columns(r)]
    return 0 < len(columns) <= 40 and len(common) >= 0.5 * len(columns) \
        and sum(_scalar(c) for c in cells) >= 0.6 * len(cells)
