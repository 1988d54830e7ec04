"""Retraining on the newest data, registered as a challenger and promoted only if it wins
(Continued Model Evaluation, 18, with Workflow Pipeline, 25, and Model Versioning, 27).

Problem: once the monitor says a model has decayed, retraining it by hand is slow, and
replacing it blindly is risky: the new model may be no better. Solution: run the spec's
pipeline again on the newest window of its data, register the result as a new version
with the alias ``challenger``, score the champion and the challenger on the same recent
labelled predictions from the prediction log (their logged inputs, through each bundle's
serving function), and move ``champion`` to the challenger only if it beats the champion
by ``promote_margin`` on the primary metric. Both numbers go into the registry's audit
trail (the tags of the challenger's version and the message of the alias move).

Time is cut so that the comparison is fair: with ``end`` the time up to which everything is
known and the spec's ``monitoring.retrain``'s ``window`` and ``holdout``::

    data rows with time in [end - holdout - window, end - holdout)   -> the challenger trains on them
    labelled predictions with event_time in [end - holdout, end)     -> champion vs challenger

so the challenger never trains on the rows that judge it. ``cooldown`` skips a retraining
that would end less than that after the last one (in the data's time, so a replay of past
days behaves as live traffic would).
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RetrainResult", "labelled_predictions", "retrain", "score_bundle"]

TAG_END = "retrained_until"  # the end of the data a retrained version saw (data time, UTC)


@dataclass
class RetrainResult:
    """What one retraining did: ``ran`` False with ``reason`` when it was skipped; otherwise the challenger's
    ``version``, both models' ``metric`` on ``rows`` labelled predictions, and whether it was ``promoted``."""

    ran: bool
    reason: str = ""
    name: str = ""
    metric: str = ""
    version: int | None = None
    champion_version: int | None = None
    challenger_value: float | None = None
    champion_value: float | None = None
    promoted: bool = False
    rows: int = 0
    output_dir: Path | None = None
    period: dict[str, str] = field(default_factory=dict)

    def message(self) -> str:
        if not self.ran:
            return f"retraining skipped: {self.reason}"
        head = f"retrained {self.name!r} as version {self.version} (challenger)"
        if self.challenger_value is None:
            return f"{head}; {self.reason}"
        champion = "no champion yet" if self.champion_value is None else \
            f"champion version {self.champion_version} {self.metric} {self.champion_value:.4f}"
        verdict = "promoted to champion" if self.promoted else "not promoted"
        return (f"{head}: {self.metric} {self.challenger_value:.4f} vs {champion} on {self.rows:,} labelled "
                f"predictions; {verdict}" + (f" ({self.reason})" if self.reason else ""))


def _utc(value: Any) -> Any:
    import pandas as pd

    from mlpatterns.serving.continued_evaluation.evaluation_windows import as_utc_naive

    return pd.Timestamp(as_utc_naive(value, "time"))


def _times(frame: Any, column: str) -> Any:
    import pandas as pd

    from mlpatterns.spec import SpecError

    if column not in frame.columns:
        raise SpecError(f"monitoring.retrain.time_column: unknown column {column!r}; the data has {list(frame.columns)}")
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        raise SpecError(f"monitoring.retrain.time_column: {column!r} holds numbers; a window such as 30d needs "
                        "dates or times")
    try:
        times = pd.to_datetime(values.astype(object) if values.dtype == object else values, utc=True, errors="coerce",
                               **({"format": "ISO8601"} if pd.api.types.is_string_dtype(values) else {}))
    except (TypeError, ValueError) as error:
        raise SpecError(f"monitoring.retrain.time_column: {column!r} does not hold times ({error})") from None
    return times.dt.tz_convert(None)


def _source_frame(spec: Any) -> tuple[Any, Path | None]:
    """The spec's whole data (no sample drawn) and its file (None for a built-in data set)."""
    from mlpatterns import datasets
    from mlpatterns.spec.schema import data_path
    from mlpatterns.tables import read_frame

    path = data_path(spec)
    if path is None:
        return getattr(datasets, f"load_{spec.data['dataset']}")(), None
    return read_frame(path, null_values=spec.data.get("null_values")), path


def _write_rows(frame: Any, keep: Any, source: Path | None, folder: Path) -> Path:
    """The kept rows as a file the spec reads as it reads its own: a CSV's very lines (its texts, its null
    markers and its Yes/No unchanged), else Parquet."""
    from mlpatterns.lifecycle.outputs import replace_atomically

    folder.mkdir(parents=True, exist_ok=True)
    name = source.name.lower() if source is not None else ""
    if source is not None and name.endswith((".csv", ".csv.gz", ".tsv")):
        opener = gzip.open if name.endswith(".gz") else open
        delimiter = "\t" if name.endswith(".tsv") else ","
        with opener(source, "rt", newline="") as handle:
            records = [row for row in csv.reader(handle, delimiter=delimiter) if row]
        if len(records) - 1 == len(keep):  # the reader's rows are the file's lines, in order
            target = folder / ("data.tsv" if name.endswith(".tsv") else "data.csv")

            def write(temporary: str) -> None:
                with open(temporary, "w", newline="") as out:
                    writer = csv.writer(out, delimiter=delimiter)
                    writer.writerow(records[0])
                    writer.writerows(record for record, kept in zip(records[1:], keep, strict=True) if kept)

            replace_atomically(target, write)
            return target
    target = folder / "data.parquet"
    replace_atomically(target, lambda temporary: frame.loc[keep].to_parquet(temporary, index=False))
    return target


def _window_spec(spec: Any, data_file: Path, output_dir: Path) -> Any:
    """The spec, reading ``data_file`` and writing into ``output_dir``, registering nothing; a time split's
    fixed cut-offs (from the original period) become fractions of the new window."""
    derived = copy.deepcopy(spec)
    derived.data = {k: v for k, v in spec.data.items() if k not in ("dataset", "path")}
    derived.data["path"] = str(data_file.resolve())
    if not str(data_file).endswith((".csv", ".tsv")):
        derived.data.pop("null_values", None)
    derived.output = {"dir": str(output_dir.resolve())}
    derived.register = {}
    if derived.split.get("by") == "time" and "cutoffs" in derived.split:
        derived.split = {k: v for k, v in derived.split.items() if k not in ("cutoffs", "cutoffs_used")}
        derived.split["fractions"] = {"train": 0.8, "valid": 0.1, "test": 0.1}
    return derived


def labelled_predictions(log: Any, model: str, since: Any, until: Any) -> tuple[Any, list[str]]:
    """The logged inputs of the predictions of ``model`` with ``since <= event_time < until`` that have a label,
    one row per key (its latest served inputs), as a frame, and the label texts.

    ``model`` matches the predictions logged under it and under ``model/...`` (a bundle served or scored
    from its folder is logged as ``SPEC/MODEL``), as the monitor watches them."""
    import duckdb
    import pandas as pd

    con = duckdb.connect()
    try:
        log.register(con)
        rows = con.execute(
            "WITH l AS (SELECT key, arg_max(label, (labelled_at, label)) AS label FROM labels "
            "WHERE key IS NOT NULL GROUP BY key) "
            "SELECT p.key, arg_max(p.inputs, p.served_at) AS inputs, any_value(l.label) AS label "
            "FROM predictions p JOIN l ON p.key = l.key "
            "WHERE (p.model = ? OR starts_with(p.model, ? || '/')) AND p.event_time >= ? AND p.event_time < ? "
            "GROUP BY p.key ORDER BY p.key",
            [model, model, _utc(since).to_pydatetime(), _utc(until).to_pydatetime()]).fetchall()
    finally:
        con.close()
    frame = pd.DataFrame([json.loads(inputs) for _, inputs, _ in rows])
    return frame, [label for _, _, label in rows]


def _targets(task: str, labels: list[str], classes: list[str] | None) -> Any:
    import numpy as np

    if task == "classification":
        return np.array([label == "1" for label in labels], dtype=np.float64)
    if task == "regression":
        return np.array([float(label) for label in labels], dtype=np.float64)
    index = {name: i for i, name in enumerate(classes or [])}
    return np.array([index.get(label, -1) for label in labels], dtype=np.float64)


def score_bundle(bundle: Path, frame: Any, labels: list[str], metric: str) -> tuple[float | None, Any]:
    """A bundle's ``metric`` on logged inputs and their labels, through its serving function; also the mask
    of the rows it could score (rows its interface refuses are left out)."""
    import numpy as np

    from mlpatterns.metrics import evaluate, evaluate_multiclass
    from mlpatterns.serving.stateless_serving_function import ServingFunction, good_rows

    serving = ServingFunction.load(bundle)
    conformed, problems = serving.conform(frame)
    good = good_rows(len(frame), problems)
    if not good.any():
        return None, good
    scores = serving.predict_features(serving.features(conformed.iloc[np.flatnonzero(good)]))
    y = _targets(serving.task, labels, serving.classes)[good]
    if serving.task == "multiclass":
        result = evaluate_multiclass(y, scores, serving.classes)
    elif serving.task in ("classification", "regression"):
        result = evaluate(serving.task, y, scores, serving.threshold)
    else:
        return None, good
    return result.get(metric), good


def _last_end(registry: Any, name: str) -> Any:
    from mlpatterns.reproducibility.model_versioning import ModelNotFoundError

    try:
        versions = registry.list_versions(name)
    except ModelNotFoundError:
        return None
    ends = [_utc(v.tags[TAG_END]) for v in versions if TAG_END in v.tags]
    return max(ends) if ends else None


def _choose_model(spec: Any, run: Any, metric: str) -> str:
    from mlpatterns.metrics import higher_is_better

    if spec.register.get("model"):
        return spec.register["model"]
    scored = {n: v[metric] for n, v in run.metrics.items() if n != "heuristic_benchmark" and metric in v}
    if not scored:
        return next(iter(run.bundles))
    sign = 1 if higher_is_better(metric) else -1
    return max(scored, key=lambda n: sign * scored[n])


def retrain(spec: Any, *, end: Any = None, log_url: str | None = None, registry: str | None = None,
            output_dir: str | Path | None = None, seed: int = 0, trigger: str = "on demand",
            log: Any = print) -> RetrainResult:
    """Retrain ``spec`` on its newest window, register a challenger, promote it if it beats the champion.

    ``end`` defaults to the newest time in the data; ``log_url`` to ``monitoring.log``;
    ``registry`` to ``register.registry``, else ``$MLPATTERNS_REGISTRY``, else the default;
    ``output_dir`` (where the window's data and the run go) to ``<output.dir>/retraining/<end>``.
    ``trigger`` says why (an alert, on demand), for the audit trail.
    """
    from mlpatterns.lifecycle.registration import registry_url
    from mlpatterns.lifecycle.run import run_spec
    from mlpatterns.metrics import HEADLINE_METRICS, higher_is_better
    from mlpatterns.reproducibility.model_versioning import ModelNotFoundError, open_registry
    from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log
    from mlpatterns.spec import SpecError
    from mlpatterns.spec.monitoring import duration_seconds

    monitoring = spec.monitoring
    if not monitoring or "window" not in monitoring.get("retrain", {}):
        raise SpecError(f"{spec.source or spec.name}: monitoring.retrain: the spec says nothing about retraining "
                        "(add monitoring: {log: ..., retrain: {window: 30d, time_column: ...}})")
    section = monitoring["retrain"]
    window = dt.timedelta(seconds=duration_seconds(section["window"], "monitoring.retrain.window"))
    holdout = dt.timedelta(seconds=duration_seconds(section["holdout"], "monitoring.retrain.holdout"))
    metric = section.get("metric") or spec.register.get("metric") or \
        HEADLINE_METRICS["neutral" if "neutral" in spec.target else spec.task]
    name = monitoring["model"]
    frame, source = _source_frame(spec)
    times = _times(frame, section["time_column"])
    end = _utc(end) if end is not None else times.max()
    start, cut = end - holdout - window, end - holdout
    period = {"train_from": str(start), "train_until": str(cut), "compare_from": str(cut), "compare_until": str(end)}
    url = registry_url(registry or spec.register.get("registry"))
    with open_registry(url) as opened:
        last = _last_end(opened, name)
    if last is not None and section.get("cooldown") is not None and \
            end - last < dt.timedelta(seconds=duration_seconds(section["cooldown"])):
        return RetrainResult(ran=False, name=name, metric=metric, period=period,
                             reason=f"the last retraining saw data until {last}, less than the cooldown "
                                    f"{section['cooldown']} before {end}")
    keep = ((times >= start) & (times < cut)).to_numpy()
    if not keep.any():
        return RetrainResult(ran=False, name=name, metric=metric, period=period,
                             reason=f"no data row has {section['time_column']} in [{start}, {cut})")
    folder = Path(output_dir) if output_dir is not None else \
        spec.output_dir / "retraining" / end.strftime("%Y%m%dT%H%M%S")
    data_file = _write_rows(frame, keep, source, folder)
    derived = _window_spec(spec, data_file, folder / "run")
    log(f"retraining {spec.name} on {int(keep.sum()):,} rows with {section['time_column']} in [{start}, {cut}) "
        f"({trigger})")
    run = run_spec(derived, seed=seed, log=log, register=False)
    model = _choose_model(spec, run, metric)
    bundle = run.bundles[model]
    tags = {TAG_END: str(end), "retrained_from": str(start), "retrain_trigger": trigger[:200]}
    with open_registry(url) as opened:
        try:
            champion = opened.lookup(f"models:/{name}@champion")
        except ModelNotFoundError:
            champion = None
        digest = json.loads((bundle / "manifest.json").read_text())["manifest_sha256"]
        try:
            same = [v for v in opened.list_versions(name) if v.bundle_digest == digest]
        except ModelNotFoundError:
            same = []
        message = (f"retrained on {spec.name}'s data in [{start}, {cut}) ({trigger}); test {metric} "
                   f"{run.metrics[model].get(metric, float('nan')):.4f}")
        if same:
            version = same[0]
            opened.set_alias(name, "challenger", version.version, message=f"{message}; the same bundle as version "
                                                                            f"{version.version}")
            opened.set_tags(name, version.version, tags)
        else:
            version = opened.register(bundle, name, alias="challenger", tags=tags, message=message)
        result = RetrainResult(ran=True, name=name, metric=metric, version=version.version, output_dir=folder,
                               champion_version=None if champion is None else champion.version, period=period)
        with open_prediction_log(log_url or monitoring["log"]) as prediction_log:
            inputs, labels = labelled_predictions(prediction_log, name, cut, end)
        result.rows = len(labels)
        if champion is None:
            opened.set_alias(name, "champion", version.version,
                             message=f"{message}; no champion before: the challenger is promoted")
            result.promoted, result.reason = True, "there was no champion"
            return result
        if champion.version == version.version:
            result.reason = "the challenger is the champion's very bundle"
            return result
        if not labels:
            result.reason = f"no labelled predictions in [{cut}, {end}) to compare on: the champion stays"
            opened.set_tags(name, version.version, {"promoted": "false"}, message=result.reason)
            return result
        challenger_value, good = score_bundle(opened.resolve(version.uri), inputs, labels, metric)
        champion_value, champion_good = score_bundle(opened.resolve(champion.uri), inputs, labels, metric)
        if (good != champion_good).any():  # the same rows for both
            both = good & champion_good
            keep_rows = [i for i, ok in enumerate(both) if ok]
            inputs, labels = inputs.iloc[keep_rows].reset_index(drop=True), [labels[i] for i in keep_rows]
            challenger_value, _ = score_bundle(opened.resolve(version.uri), inputs, labels, metric)
            champion_value, _ = score_bundle(opened.resolve(champion.uri), inputs, labels, metric)
            result.rows = len(labels)
        result.challenger_value, result.champion_value = challenger_value, champion_value
        margin = float(section.get("promote_margin", 0.0))
        if challenger_value is None or champion_value is None:
            result.reason = f"{metric} could not be computed on the labelled predictions: the champion stays"
            opened.set_tags(name, version.version, {"promoted": "false"}, message=result.reason)
            return result
        gain = challenger_value - champion_value if higher_is_better(metric) else champion_value - challenger_value
        result.promoted = gain > margin
        numbers = (f"challenger version {version.version} {metric} {challenger_value:.4f} vs champion version "
                   f"{champion.version} {metric} {champion_value:.4f} on {result.rows} labelled predictions in "
                   f"[{cut}, {end}); promote_margin {margin:g}")
        opened.set_tags(name, version.version, {
            f"challenger_{metric}": f"{challenger_value:.6f}", f"champion_{metric}": f"{champion_value:.6f}",
            "compared_with_version": str(champion.version), "compared_rows": str(result.rows),
            "promoted": "true" if result.promoted else "false"}, message=numbers)
        if result.promoted:
            opened.set_alias(name, "champion", version.version, message=f"promoted: {numbers}")
        else:
            result.reason = f"does not beat the champion by more than {margin:g}"
        return result
