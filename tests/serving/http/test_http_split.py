"""A traffic split between versions by key (Stateless Serving Function, 16): each row goes to
the version its key's FarmHash bucket falls in, the same one every time, in both protocols."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mlpatterns.reproducibility.repeatable_splitting import key_buckets
from mlpatterns.serving import ServingFunction
from mlpatterns.serving.http import (
    ModelLoadError,
    ServedModels,
    SplitError,
    TrafficSplit,
    create_app,
)

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]
KEYS = 2000


def _instances(frame, keys) -> list[dict]:
    rows = frame[INPUTS].iloc[[k % len(frame) for k in keys]].to_dict(orient="records")
    return [{"row_id": int(k), **{c: (v.item() if hasattr(v, "item") else v) for c, v in row.items()}}
            for k, row in zip(keys, rows, strict=True)]


def _expected_version(keys) -> list[str]:
    buckets = key_buckets(pd.DataFrame({"row_id": pd.Series(list(keys), dtype=object)}), "row_id", 10_000)
    return ["3" if b < 9000 else "4" for b in buckets]


@pytest.fixture(scope="module")
def client(carseats):
    _, bundles = carseats
    return TestClient(create_app({"sales": {3: bundles["sales"], 4: bundles["sales"]}}, split={"sales": "3:90,4:10"}))


def _versions(client, frame, keys) -> dict[int, str]:
    answer = client.post("/v1/models/sales:predict", json={"instances": _instances(frame, keys)})
    assert answer.status_code == 200, answer.text
    return {p["row_id"]: p["model_version"] for p in answer.json()["predictions"]}


def test_rows_go_to_versions_by_key_hash_with_the_shares_asked(client, carseats):
    frame, bundles = carseats
    keys = list(range(KEYS))
    versions = {}
    for start in range(0, KEYS, 500):
        versions.update(_versions(client, frame, keys[start:start + 500]))
    assert [versions[k] for k in keys] == _expected_version(keys)  # ABS(MOD(FARM_FINGERPRINT(key), 10000))
    shares = Counter(versions.values())
    assert abs(shares["4"] / KEYS - 0.10) < 0.02 and shares["3"] + shares["4"] == KEYS
    # the same keys, in another order and other batches, go to the same versions
    shuffled = [int(k) for k in np.random.default_rng(0).permutation(keys)[:700]]
    assert _versions(client, frame, shuffled) == {k: versions[k] for k in shuffled}
    # the predictions are each version's own, row by row
    answer = client.post("/v1/models/sales:predict", json={"instances": _instances(frame, keys[:50])}).json()
    expected = ServingFunction.load(bundles["sales"]).predict(
        pd.DataFrame(_instances(frame, keys[:50])))["prediction"].tolist()
    assert [p["prediction"] for p in answer["predictions"]] == pytest.approx(expected)
    assert [p["row_id"] for p in answer["predictions"]] == keys[:50]


def test_a_version_asked_for_skips_the_split(client, carseats):
    frame, _ = carseats
    answer = client.post("/v1/models/sales/versions/4:predict", json={"instances": _instances(frame, range(20))})
    assert "model_version" not in answer.json()["predictions"][0]


def test_columnar_and_open_inference_answers_carry_each_rows_version(client, carseats):
    frame, _ = carseats
    keys = list(range(40))
    instances = _instances(frame, keys)
    columns = {c: [row[c] for row in instances] for c in ["row_id", *INPUTS]}
    outputs = client.post("/v1/models/sales:predict", json={"inputs": columns}).json()["outputs"]
    assert outputs["model_version"] == _expected_version(keys) and outputs["row_id"] == keys
    tensors = [{"name": c, "datatype": "BYTES" if isinstance(v[0], str) else "FP64", "shape": [len(v)], "data": v}
               for c, v in columns.items() if c != "row_id"]
    tensors.append({"name": "row_id", "datatype": "INT64", "shape": [len(keys)], "data": keys})
    answer = client.post("/v2/models/sales/infer", json={"inputs": tensors}).json()
    tensor = next(o for o in answer["outputs"] if o["name"] == "model_version")
    assert tensor["datatype"] == "BYTES" and tensor["data"] == _expected_version(keys)
    assert "model_version" not in answer  # the rows had two versions
    one = [k for k, v in zip(keys, _expected_version(keys), strict=True) if v == "3"][:3]
    tensors = [{**t, "shape": [3], "data": [t["data"][k] for k in one]} for t in tensors]
    assert client.post("/v2/models/sales/infer", json={"inputs": tensors}).json()["model_version"] == "3"


def test_metrics_count_rows_per_version(carseats):
    frame, bundles = carseats
    client = TestClient(create_app({"sales": {3: bundles["sales"], 4: bundles["sales"]}}, split={"sales": "3:50,4:50"}))
    keys = list(range(100))
    client.post("/v1/models/sales:predict", json={"instances": _instances(frame, keys)})
    samples = [s for family in text_string_to_metric_families(client.get("/metrics").text) for s in family.samples]
    rows = {s.labels["version"]: s.value for s in samples if s.name == "mlpatterns_http_predicted_rows_total"}
    buckets = key_buckets(pd.DataFrame({"row_id": pd.Series(keys, dtype=object)}), "row_id", 10_000)
    expected = Counter("3" if b < 5000 else "4" for b in buckets)
    assert rows == dict(expected)
    requests = {s.labels["version"]: s.value for s in samples if s.name == "mlpatterns_http_requests_total"}
    assert requests == {"3,4": 1}


def test_a_split_over_labels(carseats):
    frame, bundles = carseats
    app = create_app({"sales": {3: bundles["sales"], 4: bundles["sales"]}},
                     labels={"sales": {"champion": 3, "challenger": 4}}, split={"sales": "champion:95,challenger:5"})
    answer = TestClient(app).post("/v1/models/sales:predict", json={"instances": _instances(frame, range(300))})
    assert set(Counter(p["model_version"] for p in answer.json()["predictions"])) == {"3", "4"}


def test_split_text_and_its_errors():
    split = TrafficSplit.parse("3:90,4:9.5,champion:0.5")
    assert split.ranges() == [(3, 0, 9000), (4, 9000, 9950), ("champion", 9950, 10000)]
    assert str(split) == "3:90,4:9.5,champion:0.5"
    assert TrafficSplit.of({3: 90, 4: 10}) == TrafficSplit.parse("3:90,4:10")
    for text, problem in [("3:90,4:5", "sum to 95, expected 100"), ("3:90,3:10", "3 is given twice"),
                          ("3:99.995,4:0.005", "more than two decimals"), ("3:90,0:10", "1, 2, 3"),
                          ("3:90,-x:10", "a version \\(3\\) or a label"), ("3=90", "VERSION:PERCENT"),
                          ("3:ninety", "not a number"), ("3:0,4:100", "percentage in \\(0, 100\\]")]:
        with pytest.raises(SplitError, match=problem):
            TrafficSplit.parse(text)


class _NoKeys(ServingFunction):
    @property
    def key_columns(self) -> list[str]:
        return []


def test_split_configurations_that_cannot_work_are_refused(carseats):
    _, bundles = carseats
    sales = ServingFunction.load(bundles["sales"])
    with pytest.raises(ModelLoadError, match=r"split of 'sales' \(3:50,5:50\): version 5 is not served"):
        ServedModels({"sales": {3: sales, 4: sales}}, split={"sales": "3:50,5:50"})
    with pytest.raises(ModelLoadError, match="label 'canary' is not served"):
        ServedModels({"sales": {3: sales, 4: sales}}, split={"sales": "3:50,canary:50"})
    with pytest.raises(ModelLoadError, match="split of 'sales': traffic split 3:50,4:10: the shares sum to 60"):
        ServedModels({"sales": {3: sales, 4: sales}}, split={"sales": {3: 50, 4: 10}})
    keyless = _NoKeys(sales.bundle)
    with pytest.raises(ModelLoadError, match="the model has no key columns; a traffic split sends each row"):
        ServedModels({"sales": {3: keyless, 4: keyless}}, split={"sales": "3:50,4:50"})
    with pytest.raises(ModelLoadError, match="versions 3 and 4 differ in their inputs or keys"):
        ServedModels({"sales": {3: sales, 4: keyless}}, split={"sales": "3:50,4:50"})
