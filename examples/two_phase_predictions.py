"""Two-Phase Predictions (pattern 19) on natality: a clinic's device flags at-risk births, a server grades them.

Phase 1, on the device (offline, in process): "is this baby at risk of a low birth
weight (< 5.5 lb)?" from what a prenatal visit records (is_male, mother_age,
plurality, gestation_weeks): a small torch MLP exported to ONNX and int8-quantized.
Phase 2, on the server, behind ``mlpatterns serve``: "which weight class: normal,
low (3.3-5.5 lb) or very low (< 3.3 lb)?" from the same fields plus mother_race (a
record the server holds): gradient-boosted trees in a bundle. Rows phase 1 does not
flag are answered "normal" on the device; only the flagged ones are sent, in one request.

The phase-1 threshold is chosen on the validation split, two ways: (a) phase-1 recall
of the low-weight births >= 95 %, (b) the most calls spared while the combined balanced
accuracy stays within 1 point of phase 2 alone; every number is measured on the test
split (a hash of row_id: 70/10/20). Phase 2 runs behind create_app (uvicorn, loopback). Run: ``.venv/bin/python examples/two_phase_predictions.py [births]``
(all 65,137 by default). Writes docs/patterns/img/two_phase_tradeoff.png.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from mlpatterns.bundles import write_bundle
from mlpatterns.datasets import load_natality
from mlpatterns.export import sklearn_to_onnx
from mlpatterns.reproducibility import hash_split
from mlpatterns.reproducibility.transform import FeatureTransform
from mlpatterns.serving import ServingFunction
from mlpatterns.serving.two_phase_predictions import (
    HttpPhaseTwo,
    TwoPhaseModel,
    choose_threshold,
    fit_phase_one,
    plot_tradeoff,
    quantize_phase_one,
    tradeoff_curve,
)

CLASSES = ["normal", "low", "very_low"]
PHASE_ONE = ["male", "mother_age", "plurality_count", "gestation_weeks"]
PHASE_TWO = ["is_male", "mother_age", "plurality", "gestation_weeks", "mother_race"]
DEVICE = "MLP 64-64, int8 dynamic"
PLOT = Path(__file__).resolve().parents[1] / "docs" / "patterns" / "img" / "two_phase_tradeoff.png"


def births_table(rows: int | None = None) -> pd.DataFrame:
    """The natality births with the device's numeric fields and the coarse and fine targets."""
    births = load_natality()
    if rows is not None:
        births = births.iloc[:rows].copy()
    births["male"] = births["is_male"].astype(float)
    births["plurality_count"] = births["plurality"].str.extract(r"\((\d)\)", expand=False).astype(float)
    weight = births["weight_pounds"]
    births["weight_class"] = np.select([weight < 3.3, weight < 5.5], ["very_low", "low"], "normal")
    births["at_risk"] = (weight < 5.5).astype(int)
    return births


def write_phase_two_bundle(directory: Path, train: pd.DataFrame, *, max_iter: int = 300) -> Path:
    """Fit the phase-2 transform and gradient-boosted classes on ``train``; write them as a bundle."""
    transform = FeatureTransform(numeric=["mother_age", "gestation_weeks"],
                                 categorical=["is_male", "plurality", "mother_race"]).fit(train)
    X = transform.transform(train).matrix()
    y = train["weight_class"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    model = HistGradientBoostingClassifier(max_iter=max_iter, random_state=0).fit(X, y)
    onnx = sklearn_to_onnx(model, X[:500], "classification")
    kinds = {"is_male": "boolean", "plurality": "text", "mother_age": "number", "gestation_weeks": "number",
             "mother_race": "number"}
    outputs = [{"name": f"probability_{c}", "type": "number"} for c in CLASSES]
    manifest = {"name": "natality/weight_class", "task": "multiclass", "classes": CLASSES,
                "model": {"type": "gradient_boosting", "file": "model.onnx", "output": "probabilities"},
                "transform": "transform.json",
                "signature": {"inputs": [{"name": c, "type": kinds[c]} for c in transform.input_columns],
                              "keys": ["row_id"], "outputs": [*outputs, {"name": "prediction", "type": "text",
                                                                        "values": CLASSES}]}}
    return write_bundle(directory, {"model.onnx": onnx, "transform.json": transform.to_json().encode()}, manifest,
                        overwrite=True)


class Server:
    """``mlpatterns serve``'s app (create_app) run by uvicorn on a free loopback port, in a thread."""

    def __init__(self, models: dict) -> None:
        import uvicorn

        from mlpatterns.serving.http import create_app

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(create_app(models, access_log=False), host="127.0.0.1", port=self.port,
                                log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def balanced_accuracy(truth: np.ndarray, answer: np.ndarray) -> float:
    """The mean of the recalls of the classes."""
    return float(np.mean([(answer[truth == c] == c).mean() for c in CLASSES if (truth == c).any()]))


def per_row_microseconds(model: bytes, rows: np.ndarray, repeat: int = 3000) -> float:
    """Median of 5 runs of ``repeat`` one-row calls of ONNX Runtime (one thread), in microseconds per row."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feeds = [{"features": rows[i % len(rows): i % len(rows) + 1]} for i in range(repeat)]
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for feed in feeds:
            session.run(None, feed)
        times.append((time.perf_counter() - start) / repeat * 1e6)
    return float(np.median(times))


def main(rows: int | None = None) -> None:
    started = time.perf_counter()
    births = births_table(rows)
    split = hash_split(births, "row_id", {"train": 0.7, "valid": 0.1, "test": 0.2}).to_numpy()
    train, valid, test = (births[split == s].reset_index(drop=True) for s in ("train", "valid", "test"))
    print(f"births: {len(births):,} (train {len(train):,}, valid {len(valid):,}, test {len(test):,}); "
          f"test at risk (< 5.5 lb): {test['at_risk'].mean():.1%}, very low (< 3.3 lb): "
          f"{(test['weight_class'] == 'very_low').mean():.1%}")

    # phase 1: float, then int8 (dynamic and static)
    t = time.perf_counter()
    phase_one = {"logistic regression, float32": fit_phase_one(train[PHASE_ONE], train["at_risk"], hidden_units=()),
                 "MLP 64-64, float32": fit_phase_one(train[PHASE_ONE], train["at_risk"], hidden_units=(64, 64))}
    phase_one["MLP 64-64, int8 dynamic"] = quantize_phase_one(phase_one["MLP 64-64, float32"])
    phase_one["MLP 64-64, int8 static"] = quantize_phase_one(phase_one["MLP 64-64, float32"],
                                                             calibration=train[PHASE_ONE].iloc[:2000])
    print(f"phase 1 trained and quantized in {time.perf_counter() - t:.1f} s")

    # phase 2: the bundle, served over loopback HTTP
    t = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="two_phase_"))
    bundle = write_phase_two_bundle(folder / "weight_class", train)
    local = ServingFunction.load(bundle)
    print(f"phase 2 trained and bundled in {time.perf_counter() - t:.1f} s")
    phase_two_valid = local.predict(valid)["prediction"].to_numpy()
    phase_two_test = local.predict(test)["prediction"].to_numpy()

    # the thresholds, on validation rows: (a) phase-1 recall of the at-risk births >= 95 %;
    # (b) the most calls spared while the combined balanced accuracy stays within 1 point of phase 2 alone
    def within_one_point(scores: np.ndarray) -> float:
        curve = tradeoff_curve(scores, valid["at_risk"], valid["weight_class"], phase_two_valid, negative="normal")
        kept = curve[curve["balanced_accuracy"] >= curve["phase_two_balanced_accuracy"] - 0.01]
        return float(kept.loc[kept["calls_spared"].idxmax(), "threshold"])

    policies = {"(a) recall of at-risk births >= 95 %": lambda scores: choose_threshold(
                    scores, valid["at_risk"], min_recall=0.95),
                "(b) balanced accuracy within 1 point of phase 2 alone": within_one_point}
    truth = test["weight_class"].to_numpy()
    at_risk = test["at_risk"].to_numpy() == 1
    print("\nphase 1 on the test births (threshold by policy (a), chosen on valid):")
    print("| phase 1 | size (bytes) | µs/row (ONNX Runtime, 1 row a call) | ROC AUC | threshold | "
          "recall at risk | calls spared | accuracy | balanced accuracy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, model in phase_one.items():
        scorer = TwoPhaseModel(model, 0.5, local, negative="normal", keys=["row_id"])
        threshold = next(iter(policies.values()))(scorer.phase_one_scores(valid))
        scores = scorer.phase_one_scores(test)
        sent = scores >= threshold
        combined = np.where(sent, phase_two_test, "normal")
        print(f"| {name} | {len(model):,} | {per_row_microseconds(model, test[PHASE_ONE].to_numpy(np.float32)):.1f} | "
              f"{roc_auc_score(at_risk, scores):.4f} | {threshold:.4f} | {sent[at_risk].mean():.3f} | "
              f"{1 - sent.mean():.3f} | {(combined == truth).mean():.4f} | {balanced_accuracy(truth, combined):.4f} |")
    device_scorer = TwoPhaseModel(phase_one[DEVICE], 0.5, local, negative="normal", keys=["row_id"])
    valid_scores = device_scorer.phase_one_scores(valid)
    thresholds = {policy: choose(valid_scores) for policy, choose in policies.items()}
    curve = tradeoff_curve(valid_scores, valid["at_risk"], valid["weight_class"], phase_two_valid, negative="normal")
    plot_tradeoff(curve, PLOT, chosen={policy[:3] + " threshold": t for policy, t in thresholds.items()},
                  title="Natality, validation births: phase 1 = int8 MLP, phase 2 = gradient-boosted classes")
    print(f"\ncurve (validation births, phase 1 = {DEVICE}), near every 10 % of calls spared:")
    near = [int(np.argmin(np.abs(curve["calls_spared"].to_numpy() - share))) for share in np.arange(0, 1.01, 0.1)]
    print(curve.iloc[sorted(set(near)), :6].round(4).to_string(index=False))

    # the whole thing: phase 1 in process, phase 2 over loopback HTTP
    answers = {"always normal (majority class)": (np.full(len(test), "normal"), 0),
               "phase 2 alone (every birth sent)": (phase_two_test, len(test))}
    with Server({"weight_class": bundle}) as server, HttpPhaseTwo(server.url, "weight_class") as client:
        for policy, threshold in thresholds.items():
            two_phase = TwoPhaseModel(phase_one[DEVICE], threshold, client, negative="normal", keys=["row_id"])
            before = client.requests
            t = time.perf_counter()
            result = two_phase.predict(test)
            whole = time.perf_counter() - t
            assert result["row_id"].tolist() == test["row_id"].tolist() and client.requests == before + 1
            called = result["phase_two_called"].to_numpy()
            answers[f"two-phase, {policy}"] = (result["prediction"].to_numpy(), int(called.sum()))
            print(f"\n{policy}: threshold {threshold:.4f}; all {len(test):,} test births in one predict "
                  f"{whole * 1e3:.0f} ms, {int(called.sum()):,} of them in one request")
        flagged = test[called]
        one_row_ms = []
        for i in range(min(200, len(flagged))):
            t = time.perf_counter()
            client.predict(flagged.iloc[i:i + 1])
            one_row_ms.append((time.perf_counter() - t) * 1e3)
        batch_ms, batch_sent = [], []
        for start in range(0, min(len(test) - 99, 10_000), 100):
            before = client.requests
            t = time.perf_counter()
            two_phase.predict(test.iloc[start:start + 100])
            batch_ms.append((time.perf_counter() - t) * 1e3)
            batch_sent.append(int((two_phase.phase_one_scores(test.iloc[start:start + 100]) >= threshold).sum()))
        single = test.iloc[:300]
        t = time.perf_counter()
        for i in range(len(single)):
            two_phase.phase_one_scores(single.iloc[i:i + 1])
        device_us = (time.perf_counter() - t) / len(single) * 1e6
        rows = single[PHASE_ONE].to_numpy()
        t = time.perf_counter()
        for i in range(len(rows)):
            two_phase.phase_one_scores(rows[i:i + 1])
        array_us = (time.perf_counter() - t) / len(rows) * 1e6

    print("\nthe fine question on the test births (weight class):")
    print("| answer | accuracy | balanced accuracy | recall low | recall very low | phase-2 rows | agreement with phase 2 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (answer, calls) in answers.items():
        recall = [(answer[truth == c] == c).mean() for c in ("low", "very_low")]
        print(f"| {name} | {(answer == truth).mean():.4f} | {balanced_accuracy(truth, answer):.4f} | "
              f"{recall[0]:.3f} | {recall[1]:.3f} | {calls:,} ({calls / len(test):.1%}) | "
              f"{(answer == phase_two_test).mean():.4f} |")
    print("\nthe coarse question on the test births (at risk: < 5.5 lb):")
    print("| answer | accuracy | precision | recall | flagged |")
    print("|---|---:|---:|---:|---:|")
    device_test = device_scorer.phase_one_scores(test)
    for name, flags in [("phase 1 alone, threshold 0.5", device_test >= 0.5),
                        *[(f"phase 1 alone, {p[:3]} threshold {t:.4f}", device_test >= t) for p, t in thresholds.items()],
                        ("phase 2 alone (low or very low)", phase_two_test != "normal")]:
        print(f"| {name} | {(flags == at_risk).mean():.4f} | {at_risk[flags].mean():.3f} | "
              f"{flags[at_risk].mean():.3f} | {flags.mean():.1%} |")
    sizes = {name: len(data) for name, data in local.bundle.files.items()}
    print(f"\nsizes: phase 1 on the device {len(phase_one[DEVICE]):,} bytes; phase 2 model.onnx "
          f"{sizes['model.onnx'] / 1024:.0f} KB (bundle files {sum(sizes.values()) / 1024:.0f} KB)")
    print(f"latency: TwoPhaseModel.phase_one_scores of a one-row DataFrame {device_us:.0f} µs, of a one-row "
          f"array {array_us:.0f} µs; phase 2 over "
          f"loopback HTTP, one row a call: median {np.median(one_row_ms):.2f} ms (p90 "
          f"{np.percentile(one_row_ms, 90):.2f} ms); TwoPhaseModel.predict of 100 births: median "
          f"{np.median(batch_ms):.2f} ms ({np.mean(batch_sent):.1f} of them sent, in one request)")
    print(f"plot: {PLOT}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
