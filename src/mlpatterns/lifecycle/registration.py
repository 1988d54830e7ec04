"""The register step of ``mlpatterns run`` (Model Versioning, 27), behind a gate.

A run registers its model (the spec's ``register:`` section) only if it beats, on this
run's test split, the heuristic benchmark (28) and the model the alias points at now
(the champion): both bundles score this run's test rows through ONNX Runtime, so a model
equal to the champion does not pass by a rounding, and the champion is not judged by old
numbers on another split.
``mlpatterns run --register-anyway MESSAGE`` registers a model that fails the gate; the
message and the failed checks go into the registry's audit trail. Registering is
idempotent: a bundle already registered (same manifest digest) is not registered again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_REGISTRY", "REGISTRY_VARIABLE", "register_run", "registry_url"]

REGISTRY_VARIABLE = "MLPATTERNS_REGISTRY"
DEFAULT_REGISTRY = "sqlite:///registry/registry.db"  # REGISTRY_BACKENDS.default (a test holds them equal)


def registry_url(url: str | None = None) -> str:
    """``url`` (a spec's ``register.registry``, a ``--registry`` flag), else ``$MLPATTERNS_REGISTRY``, else the
    embedded default."""
    return url or os.environ.get(REGISTRY_VARIABLE) or DEFAULT_REGISTRY


def _headline(spec: Any) -> str:
    from mlpatterns.metrics import HEADLINE_METRICS

    return HEADLINE_METRICS["neutral" if "neutral" in spec.target else spec.task]


def _better(value: float, than: float, metric: str) -> bool:
    from mlpatterns.metrics import higher_is_better

    return value > than if higher_is_better(metric) else value < than


def register_run(spec: Any, run: Any, y_test_file: Path, *, override: str | None = None,
                 log: Any = print) -> dict[str, str]:
    """Register the run's model as the spec says; return ``{model: what happened}``."""
    from mlpatterns.reproducibility.model_versioning import ModelNotFoundError, open_registry

    section = spec.register
    metric = section.get("metric") or _headline(spec)
    scored = {name: values[metric] for name, values in run.metrics.items()
              if name != "heuristic_benchmark" and metric in values}
    if not scored:
        return {section.get("model", spec.name): f"not registered: no model reports {metric}"}
    model = section.get("model") or max(scored, key=lambda n: scored[n] if _better(1, 0, metric) else -scored[n])
    bundle = run.bundles[model]
    digest = json.loads((bundle / "manifest.json").read_text())["manifest_sha256"]
    name, alias = section["name"], section["alias"]
    with open_registry(registry_url(section.get("registry"))) as registry:
        try:
            versions = registry.list_versions(name)
        except ModelNotFoundError:
            versions = []
        for version in versions:
            if version.bundle_digest == digest:  # this very bundle, from a run of the same spec, data and code
                return {model: f"already version {version.version} of {name!r} ({version.uri})"}
        value = scored[model]
        checks, failures = [], []
        if "heuristic_benchmark" in section["gate"]:
            benchmark = run.metrics["heuristic_benchmark"].get(metric)
            if benchmark is not None:
                checks.append(f"heuristic benchmark {metric} {benchmark:.4f}")
                if not _better(value, benchmark, metric):
                    failures.append(f"does not beat the heuristic benchmark ({metric} {value:.4f} vs {benchmark:.4f})")
        if "champion" in section["gate"] and versions:
            champion = _current(registry, name, alias)
            if champion is not None:  # both bundles score the same rows the same way (ONNX, float32)
                test_file = run.output_dir / "test.parquet"
                champion_value = _score_bundle(registry.resolve(champion.uri), test_file, y_test_file, spec, metric)
                ours = _score_bundle(bundle, test_file, y_test_file, spec, metric)
                if champion_value is None or ours is None:
                    checks.append(f"version {champion.version} ({alias}) cannot score this test split")
                else:
                    checks.append(f"{alias} version {champion.version} {metric} {champion_value:.4f} on this test split")
                    if not _better(ours, champion_value, metric):
                        failures.append(f"does not beat {alias} version {champion.version} ({metric} {ours:.4f} vs "
                                        f"{champion_value:.4f} on this test split)")
        if failures and override is None:
            reason = "; ".join(failures)
            log(f"register: {model} not registered as {name!r}: {reason} (mlpatterns run --register-anyway "
                f"MESSAGE registers it, recording the message)")
            return {model: f"not registered: {reason}"}
        message = f"mlpatterns run {spec.source or spec.name}: {model}, test {metric} {value:.4f}" + (
            f" ({'; '.join(checks)})" if checks else "")
        tags = dict(section.get("tags", {}))
        if failures:
            message += f"; gate overridden ({'; '.join(failures)}): {override}"
            tags["gate_override"] = override
        version = registry.register(bundle, name, alias=alias, tags=tags or None,
                                    description=section.get("description"), message=message,
                                    allow_interface_change=section.get("allow_interface_change", False))
        return {model: f"registered as version {version.version} of {name!r} ({version.uri}, {alias} -> "
                       f"{version.version})"}


def _current(registry: Any, name: str, alias: str) -> Any:
    """The version ``alias`` points at, or None when it points nowhere yet."""
    from mlpatterns.reproducibility.model_versioning import ModelNotFoundError

    try:
        return registry.lookup(f"models:/{name}@{alias}")
    except ModelNotFoundError:
        return None


def _score_bundle(bundle: Path, test_file: Path, y_test_file: Path, spec: Any, metric: str) -> float | None:
    """A bundle's ``metric`` on this run's test rows, served as serving scores them (None when it cannot read
    them: another interface)."""
    import numpy as np
    import pandas as pd

    from mlpatterns.metrics import (
        evaluate,
        evaluate_multiclass,
        evaluate_multilabel,
        evaluate_neutral,
    )
    from mlpatterns.serving.stateless_serving_function import ServingFunction

    serving = ServingFunction.load(bundle)
    rows, problems = serving.conform(pd.read_parquet(test_file))
    if problems:
        return None
    try:
        scores = serving.predict_features(serving.features(rows))
    except (KeyError, ValueError):
        return None
    with np.load(y_test_file, allow_pickle=False) as arrays:
        y_test = arrays["target"]
    manifest = serving.bundle.manifest
    task = serving.task
    if task == "multilabel":
        result = evaluate_multilabel(y_test, scores, manifest["labels"], np.asarray(manifest["thresholds"]))
    elif task == "multiclass" and "neutral" in spec.target:
        result = evaluate_neutral(y_test, scores)
    elif task == "multiclass":
        result = evaluate_multiclass(y_test, scores, spec.target["classes"])
    else:
        result = evaluate(task, y_test, scores, serving.threshold)
    return result.get(metric)
