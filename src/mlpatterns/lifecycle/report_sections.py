"""The report's sections from the evaluation steps of ``mlpatterns run``: the Heuristic Benchmark (28), the
evaluation plots, Explainable Predictions (29), the Fairness Lens (30) and a model card per model.

Each per-model step (``diagnostics.<model>``, ``explain.<model>``, ``fairness.<model>``) leaves a folder
holding ``result.json`` (its section of ``report.json``) and its plots (PNG). Publishing copies each plot to
``plots/<model>_<kind>_<file>.png`` in the output folder (through a temporary file) and puts the section at
``report[kind][model]`` with the published plots under ``"plots"``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpatterns.lifecycle.outputs import copy_file

__all__ = ["MODEL_STEP_SECTIONS", "benchmark_section", "model_cards", "model_step_sections"]

#: per-model step kind -> the report's section it fills
MODEL_STEP_SECTIONS = {"diagnostics": "diagnostics", "explain": "explanations", "fairness": "fairness"}


def _read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def _published_section(folder: Path, plots_dir: Path, prefix: str) -> dict[str, Any]:
    section = _read_json(folder / "result.json")
    plots = {}
    for image in sorted(folder.glob("*.png")):
        plots_dir.mkdir(exist_ok=True)
        target = plots_dir / f"{prefix}_{image.name}"
        copy_file(image, target)
        plots[image.stem] = str(target)
    if plots:
        section["plots"] = plots
    return section


def model_step_sections(artifacts: dict[str, Path], output_dir: Path, models: list[str]) -> dict[str, Any]:
    """The report's ``diagnostics``, ``explanations`` and ``fairness`` sections from the steps that ran."""
    report: dict[str, Any] = {}
    plots_dir = output_dir / "plots"
    for kind, section in MODEL_STEP_SECTIONS.items():
        found = {name: _published_section(artifacts[f"{kind}.{name}"], plots_dir, f"{name}_{kind}")
                 for name in models if f"{kind}.{name}" in artifacts}
        if found:
            report[section] = {"models": found} if kind == "fairness" else found
    if "fairness_data" in artifacts:  # before training: the data's balance across the sensitive slices
        report.setdefault("fairness", {})["data"] = _published_section(artifacts["fairness_data"], plots_dir,
                                                                        "data_fairness")
    return report


def benchmark_section(spec: Any, artifacts: dict[str, Path], log: Any,
                      output_dir: Path | None = None) -> dict[str, Any] | None:
    """Heuristic Benchmark (28): the heuristics tried, the one chosen on the valid split, and each model's
    gain over it in the problem's own units (the evaluate steps'); a model short of the margin is logged.
    With ``output_dir``, the comparison is drawn to ``plots/heuristic_benchmark.png``."""
    if "benchmark_report" not in artifacts:
        return None
    section = _read_json(artifacts["benchmark_report"])
    compared = {name: _read_json(artifacts[f"comparison.{name}"]) for name in spec.models
                if f"comparison.{name}" in artifacts}
    for name, comparison in compared.items():
        if not comparison.get("beats_margin", True):
            log(f"{name}: {comparison['message']}")
    section["models"] = compared
    if output_dir is not None and section.get("heuristics"):
        from mlpatterns.responsible.heuristic_plots import plot_heuristic_benchmark

        (output_dir / "plots").mkdir(exist_ok=True)
        path = plot_heuristic_benchmark(section, output_dir / "plots" / "heuristic_benchmark.png",
                                        title=f"{spec.name}: the models against the simple rules")
        section["plots"] = {"heuristic_benchmark": str(path)}
    return section


def model_cards(spec: Any, report: dict[str, Any], registered: dict[str, Any]) -> dict[str, Any]:
    """A model card per model (Fairness Lens, 30): intended use, data, metrics overall and by slice,
    limitations."""
    from mlpatterns.responsible.model_card import model_card

    fairness = report.get("fairness", {})
    cards = {}
    for name in spec.models:
        if name not in report["metrics"]:
            continue
        cards[name] = model_card(
            name=f"{spec.name}/{name}", description=spec.description, task=spec.task, rows=report["rows"],
            data=spec.data.get("dataset") or spec.data.get("path"), metrics=report["metrics"][name],
            heuristic=(report.get("heuristic_benchmark") or {}).get("models", {}).get(name),
            fairness_data=fairness.get("data"), fairness=fairness.get("models", {}).get(name),
            intended_use=(spec.fairness or {}).get("intended_use"),
            limitations=(spec.fairness or {}).get("limitations"), registered=registered.get(name))
    return cards
