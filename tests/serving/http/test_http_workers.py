"""``mlpatterns serve --workers 2`` (Stateless Serving Function, 16), real processes on 127.0.0.1:
Prometheus counters summed exactly over the workers, and an alias switch that reaches both."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlpatterns.reproducibility.model_versioning import open_registry
from mlpatterns.testing.load_generator import serve_process

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]
RELOAD_S = 0.5

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGTERM and uvicorn's worker supervisor are POSIX")


def _samples(base: str) -> list:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _total(samples, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture(scope="module")
def server(carseats_sales, tmp_path_factory):
    """``mlpatterns serve models:/sales@champion --workers 2`` with its own TMPDIR; yields (base URL, registry, TMPDIR)."""
    folder = tmp_path_factory.mktemp("workers")
    url = f"sqlite:///{folder}/registry.db"
    with open_registry(url) as registry:
        registry.register(carseats_sales[1]["sales"], "sales", alias="champion")
        registry.register(carseats_sales[1]["sales"], "sales")
    temporary = folder / "tmp"
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary), "OMP_NUM_THREADS": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    arguments = ["models:/sales@champion", "--registry", url, "--workers", "2", "--reload-interval", str(RELOAD_S),
                 "--log-level", "warning"]
    with serve_process(arguments, env=env, ready_timeout=45) as (process, base):
        with open_registry(url) as registry:
            yield base, registry, temporary
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert _metrics_folders(temporary) == []  # the metrics folder is gone with the server


def _metrics_folders(temporary: Path) -> list[Path]:
    return sorted(temporary.glob("mlpatterns-serve-metrics-*"))


def _rows(frame, n=2) -> list[dict]:
    rows = frame[["row_id", *INPUTS]].head(n).to_dict(orient="records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in rows]


def _infer_version(base: str, frame) -> str:
    rows = frame.head(2)
    tensors = [{"name": c, "datatype": "BYTES" if rows[c].dtype == object else "FP64", "shape": [2],
                "data": rows[c].tolist()} for c in INPUTS]
    tensors.append({"name": "row_id", "datatype": "INT64", "shape": [2], "data": rows["row_id"].tolist()})
    with httpx.Client(timeout=10) as client:  # a new connection: any worker may answer
        answer = client.post(f"{base}/v2/models/sales/infer", json={"inputs": tensors})
    assert answer.status_code == 200, answer.text
    return answer.json()["model_version"]


def test_request_counters_sum_over_the_workers(server, carseats_sales):
    base, _, temporary = server
    frame, _ = carseats_sales
    [metrics] = _metrics_folders(temporary)  # made by the server for prometheus_client's multiprocess mode
    before = _samples(base)
    sent = 60

    def predict(_: int) -> int:
        with httpx.Client(timeout=10) as client:  # one connection per request, spread over the workers
            return client.post(f"{base}/v1/models/sales:predict", json={"instances": _rows(frame)}).status_code

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(predict, range(sent))) == {200}
    after = _samples(base)
    name = "mlpatterns_http_requests_total"
    assert _total(after, name, model="sales") - _total(before, name, model="sales") == sent
    assert _total(after, name, model="sales", version="1", code="200") - \
        _total(before, name, model="sales", version="1", code="200") == sent
    rows = "mlpatterns_http_predicted_rows_total"
    assert _total(after, rows, model="sales") - _total(before, rows, model="sales") == 2 * sent
    # the one scrape in between is counted once, by whichever worker answered it
    other = {"model": "", "protocol": "other", "code": "200"}
    assert _total(after, name, **other) - _total(before, name, **other) == 1
    pids = {Path(f).stem.split("_")[-1] for f in os.listdir(metrics) if f.startswith("counter_")}
    assert len(pids) == 2, f"both workers should have counted requests, files from {pids}"


def test_an_alias_switch_reaches_every_worker(server, carseats_sales):
    base, registry, _ = server
    frame, _ = carseats_sales
    assert {_infer_version(base, frame) for _ in range(10)} == {"1"}
    loaded = "mlpatterns_model_reloads_total"
    assert _total(_samples(base), loaded, outcome="loaded") == 0
    moved = time.monotonic()
    registry.set_alias("sales", "champion", 2)
    while _total(_samples(base), loaded, outcome="loaded") < 2:  # one reload per worker
        assert time.monotonic() - moved < 20, "the workers did not both load the new version"
        time.sleep(0.1)
    assert _total(_samples(base), loaded, outcome="loaded") == 2
    assert {_infer_version(base, frame) for _ in range(40)} == {"2"}
    assert _total(_samples(base), "mlpatterns_model_reloads_total", outcome="refused") == 0


def test_the_workers_configuration_travels_as_json(carseats_sales, monkeypatch):
    from mlpatterns.serving import ServingFunction
    from mlpatterns.serving.http import ModelLoadError, ModelSource
    from mlpatterns.serving.http.workers import CONFIG_ENV, ServerConfig, app_from_environment

    bundle = str(carseats_sales[1]["sales"])
    config = ServerConfig.of([ModelSource("sales", bundle, 3), ModelSource("sales", bundle, 4)],
                             labels={"sales": {"old": 3}}, split={"sales": {3: 90, 4: 10}}, reload_interval=0)
    assert config.split == {"sales": "3:90,4:10"}
    assert ServerConfig.from_json(config.to_json()) == config
    monkeypatch.setenv(CONFIG_ENV, config.to_json())
    app = app_from_environment()
    assert list(app.state.models.versions("sales")) == [3, 4] and app.state.models.labels("sales") == {"old": 3}
    monkeypatch.delenv(CONFIG_ENV)
    with pytest.raises(ModelLoadError, match=CONFIG_ENV):
        app_from_environment()
    with pytest.raises(ModelLoadError, match="not from a loaded ServingFunction"):
        ServerConfig.of([ModelSource("sales", ServingFunction.load(bundle))])
