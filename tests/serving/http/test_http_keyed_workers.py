"""Keyed Predictions (20) across the worker processes of ``mlpatterns serve --workers 2`` (16).

Carseats with three kinds of key (an integer, a text, a composite of a text and an
integer), one bundle each, served together by two workers. The rows are shuffled, 40 of
them duplicated, and cut into batches of random sizes (1 to 60 rows); the batches of all
three models are sent in a random order, six at a time, each on a new connection so that
both workers answer (checked in each worker's own Prometheus counter file). Every answer
is checked by its keys against the in-process :class:`ServingFunction`, over TF Serving's
rows and columns and over Open Inference v2 with the keys as input tensors.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from mlpatterns.serving import ServingFunction
from mlpatterns.serving.serving_contract import json_value
from mlpatterns.testing.load_generator import run_load_sync, serve_process

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]
KEYS = {"int": ["row_id"], "text": ["code"], "composite": ["shop", "row_id"]}
TYPES = {"Price": "INT64", "Income": "INT64", "Advertising": "INT64", "ShelveLoc": "BYTES", "Urban": "BOOL",
         "row_id": "INT64", "code": "BYTES", "shop": "BYTES"}

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uvicorn's worker supervisor is POSIX")


@pytest.fixture(scope="module")
def keyed(keyed_carseats):
    """The Carseats rows with three kinds of key, and a classification bundle per kind (tests/serving/conftest.py)."""
    assert keyed_carseats.keys == KEYS and keyed_carseats.inputs == INPUTS
    return keyed_carseats.frame, keyed_carseats.bundles


@pytest.fixture(scope="module")
def server(keyed, tmp_path_factory):
    """``mlpatterns serve int=... text=... composite=... --workers 2``; yields (base URL, metrics folder)."""
    _, bundles = keyed
    temporary = tmp_path_factory.mktemp("keyed_workers_tmp")
    env = {**os.environ, "TMPDIR": str(temporary), "OMP_NUM_THREADS": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    arguments = [*(f"{kind}={bundle}" for kind, bundle in bundles.items()), "--workers", "2",
                 "--reload-interval", "0", "--log-level", "warning"]
    with serve_process(arguments, env=env) as (process, base):
        [metrics] = temporary.glob("mlpatterns-serve-metrics-*")
        yield base, metrics
        process.terminate()
        assert process.wait(timeout=20) == 0


def _requests_by_worker(metrics: Path) -> dict[str, float]:
    """Model requests counted by each worker process, from its own counter file."""
    counts = {}
    for path in metrics.glob("counter_*.db"):
        samples = [s for family in MultiProcessCollector.merge([str(path)]) for s in family.samples]
        counts[path.stem.split("_")[-1]] = sum(s.value for s in samples
                                               if s.name == "mlpatterns_http_requests_total" and s.labels.get("model"))
    return counts


def _counted_by_worker(metrics: Path, before: dict[str, float], expected: int) -> dict[str, float]:
    """The counts once every request is counted: a worker counts a request after its response is sent, so the
    client may read the last answer a moment before its worker's counter file has it (bounded: 5 s)."""
    deadline = time.monotonic() + 5.0
    while True:
        after = _requests_by_worker(metrics)
        if sum(after.values()) - sum(before.values()) >= expected or time.monotonic() > deadline:
            return after
        time.sleep(0.05)


def _batches(frame: pd.DataFrame, kind: str, seed: int) -> list[pd.DataFrame]:
    """All rows and 40 duplicates, shuffled, cut into batches of 1 to 60 rows."""
    rng = np.random.default_rng(seed)
    rows = pd.concat([frame, frame.sample(40, random_state=seed)]).sample(frac=1.0, random_state=seed + 1)
    rows = rows[[*KEYS[kind], *INPUTS]].reset_index(drop=True)
    cuts = np.cumsum(rng.integers(1, 61, size=len(rows)))
    edges = [0, *cuts[cuts < len(rows)].tolist(), len(rows)]
    return [rows.iloc[start:end] for start, end in zip(edges[:-1], edges[1:], strict=True)]


def _tf_rows(part: pd.DataFrame) -> bytes:
    return json.dumps({"instances": [{c: json_value(v) for c, v in r.items()} for r in part.to_dict("records")]}).encode()


def _tf_columns(part: pd.DataFrame) -> bytes:
    return json.dumps({"inputs": {c: [json_value(v) for v in part[c]] for c in part.columns}}).encode()


def _v2(part: pd.DataFrame) -> bytes:
    values = {**{c: part[c].tolist() for c in part.columns}, "Urban": (part["Urban"] == "Yes").tolist()}
    return json.dumps({"id": "keyed", "inputs": [{"name": c, "datatype": TYPES[c], "shape": [len(part)],
                                                  "data": [json_value(v) for v in values[c]]} for c in part.columns]}
                      ).encode()


def _answer_rows(protocol: str, content: bytes) -> pd.DataFrame:
    answer = json.loads(content)
    if protocol == "tf-rows":
        return pd.DataFrame(answer["predictions"])
    if protocol == "tf-columns":
        return pd.DataFrame(answer["outputs"])
    assert answer["id"] == "keyed"
    return pd.DataFrame({o["name"]: o["data"] for o in answer["outputs"]})


ENCODE = {"tf-rows": _tf_rows, "tf-columns": _tf_columns, "v2": _v2}


@pytest.mark.parametrize("protocol", list(ENCODE))
def test_shuffled_split_requests_come_back_by_key_from_both_workers(keyed, server, protocol):
    frame, bundles = keyed
    base, metrics = server
    references = {}
    for kind, keys in KEYS.items():
        predicted = ServingFunction.load(bundles[kind]).predict(frame)
        references[kind] = {tuple(json_value(r[k]) for k in keys): (r["probability"], r["prediction"])
                            for _, r in predicted.iterrows()}
    batches = [(kind, part) for seed, kind in enumerate(KEYS) for part in _batches(frame, kind, seed)]
    random.Random(7).shuffle(batches)
    path = "/v1/models/{}:predict" if protocol.startswith("tf") else "/v2/models/{}/infer"
    urls = [base + path.format(kind) for kind, _ in batches]
    bodies = [ENCODE[protocol](part) for _, part in batches]
    answered: list[tuple[str, pd.DataFrame, pd.DataFrame]] = []

    def check(index: int, status: int, content: bytes) -> str | None:
        if status != 200:
            return f"status {status}: {content[:300]!r}"
        kind, part = batches[index]
        answered.append((kind, part, _answer_rows(protocol, content)))
        return None

    rows = sum(len(part) for _, part in batches)
    assert rows == 3 * (len(frame) + 40)
    for _ in range(3):  # the kernel picks the worker of each connection: ask again if one got none
        answered.clear()
        before = _requests_by_worker(metrics)
        report = run_load_sync(urls.__getitem__, bodies.__getitem__, concurrency=6, requests=len(batches),
                               check=check, keep_alive=False)
        after = _counted_by_worker(metrics, before, len(batches))
        assert report.errors == [], [(c.failed_at, c.error) for c in report.errors[:5]]
        assert len(answered) == len(batches)
        for kind, part, answer in answered:
            keys = KEYS[kind]
            sent = Counter(tuple(json_value(v) for v in r) for r in part[keys].itertuples(index=False))
            got = [tuple(r) for r in answer[keys].itertuples(index=False)]
            assert Counter(got) == sent, f"{kind}: the keys answered are not the keys sent"
            expected = np.array([references[kind][k] for k in got], dtype=np.float64)
            assert answer["prediction"].astype(np.int64).tolist() == expected[:, 1].astype(np.int64).tolist()
            np.testing.assert_allclose(answer["probability"].to_numpy(np.float64), expected[:, 0], rtol=1e-6,
                                       atol=1e-7)
        share = {pid: after.get(pid, 0) - before.get(pid, 0) for pid in after}
        print(f"\n{protocol}: {len(batches)} requests, {rows} rows of 3 models in {report.seconds:.1f} s; "
              f"requests per worker {sorted(share.values())}")
        assert sum(share.values()) == len(batches)
        if len([n for n in share.values() if n > 0]) == 2:
            break
    else:
        pytest.fail(f"one worker answered every request, three times: {share}")
