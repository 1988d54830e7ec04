"""Reloading a served alias without dropping a request (Stateless Serving Function 16, Model
Versioning 27): clients keep sending while the alias moves; a tampered version is refused."""

from __future__ import annotations

import logging
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mlpatterns.reproducibility.model_versioning import open_registry
from mlpatterns.serving.http import create_app
from mlpatterns.serving.http.served_models import LOGGER

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tensors(frame, n=3) -> list[dict]:
    rows = frame.head(n)
    tensors = [{"name": c, "datatype": "BYTES" if rows[c].dtype == object else "FP64", "shape": [n],
                "data": rows[c].tolist()} for c in INPUTS]
    return [*tensors, {"name": "row_id", "datatype": "INT64", "shape": [n], "data": rows["row_id"].tolist()}]


def _reloads(client) -> dict[str, float]:
    return {s.labels["outcome"]: s.value for family in text_string_to_metric_families(client.get("/metrics").text)
            for s in family.samples if s.name == "mlpatterns_model_reloads_total"}


@pytest.fixture
def registry(tmp_path, carseats_sales):
    """A registry with the Sales bundle as versions 1 and 2; ``champion`` -> 1."""
    url = f"sqlite:///{tmp_path}/registry.db"
    with open_registry(url) as opened:
        opened.register(carseats_sales[1]["sales"], "sales", alias="champion")
        opened.register(carseats_sales[1]["sales"], "sales")
        yield opened


def test_an_alias_switch_under_load_drops_no_request(registry, carseats_sales):
    frame, _ = carseats_sales
    app = create_app({"sales": "models:/sales@champion"}, registry=registry.url, reload_interval=0.2,
                     access_log=False)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    stop = threading.Event()
    answers: list[list[tuple[int, str]]] = [[] for _ in range(3)]
    failures: list[BaseException] = []
    body = {"inputs": _tensors(frame)}

    def send(log: list[tuple[int, str]]) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            while not stop.is_set():
                try:
                    answer = client.post("/v2/models/sales/infer", json=body)
                    log.append((answer.status_code, answer.json().get("model_version", "")))
                except Exception as error:  # noqa: BLE001 - counted as a failure below
                    failures.append(error)

    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        senders = [threading.Thread(target=send, args=(log,)) for log in answers]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 30
        while not all(len(log) >= 2 for log in answers):  # every client answered by version 1 first, however slow
            assert time.monotonic() < deadline and not failures, "version 1 never answered every client"
            time.sleep(0.05)
        registry.set_alias("sales", "champion", 2)
        deadline = time.monotonic() + 15
        while not all(log and log[-1][1] == "2" for log in answers):
            assert time.monotonic() < deadline, "the new version never answered"
            time.sleep(0.05)
        time.sleep(0.3)
        stop.set()
        for sender in senders:
            sender.join(timeout=10)
        status = httpx.get(f"http://127.0.0.1:{port}/v1/models/sales").json()["model_version_status"]
        champion = httpx.get(f"http://127.0.0.1:{port}/v1/models/sales/labels/champion").json()
    finally:
        stop.set()
        server.should_exit = True
        thread.join(timeout=10)
    assert not failures
    for log in answers:
        assert {code for code, _ in log} == {200}
        versions = [version for _, version in log]
        assert versions[0] == "1" and versions[-1] == "2"
        assert versions == sorted(versions)  # once the new version answers, the old one never does again
    assert [s["version"] for s in status] == ["2"]
    assert champion["model_version_status"][0]["version"] == "2"


def test_a_tampered_version_is_refused_and_the_old_one_serves_on(registry, carseats_sales, caplog):
    frame, bundles = carseats_sales
    app = create_app({"sales": "models:/sales@champion"}, registry=registry.url, reload_interval=0)
    client = TestClient(app)
    served = app.state.models
    assert served.reload() == []  # nothing moved
    third = registry.register(bundles["sales"], "sales")
    model = third.path / "model.onnx"
    model.chmod(0o644)
    model.write_bytes(model.read_bytes() + b"\0")
    registry.set_alias("sales", "champion", third.version)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        [event] = served.reload()
    assert event.outcome == "refused" and (event.old_version, event.new_version) == (1, 3)
    assert "fails verification" in event.message and "model.onnx" in event.message
    assert "version 1 keeps serving" in event.message
    assert any("reload refused" in r.getMessage() for r in caplog.records if r.name == LOGGER)
    answer = client.post("/v2/models/sales/infer", json={"inputs": _tensors(frame)})
    assert answer.status_code == 200 and answer.json()["model_version"] == "1"
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert _reloads(client) == {"refused": 1}
    # the alias moves on to a sound version: it is loaded
    registry.set_alias("sales", "champion", 2)
    [event] = served.reload()
    assert event.outcome == "loaded" and client.post("/v2/models/sales/infer", json={
        "inputs": _tensors(frame)}).json()["model_version"] == "2"
    assert _reloads(client) == {"refused": 1, "loaded": 1}
    # an alias deleted: refused, the version serves on
    registry.delete_alias("sales", "champion")
    [event] = served.reload()
    assert event.outcome == "refused" and "no alias 'champion' any more" in event.message
    assert client.get("/v1/models/sales/labels/champion").json()["model_version_status"][0]["version"] == "2"
    served.close()


def test_a_split_over_aliases_follows_them_and_a_split_version_is_never_dropped(registry, carseats_sales):
    frame, bundles = carseats_sales
    registry.set_alias("sales", "challenger", 2)
    registry.register(bundles["sales"], "sales")
    app = create_app({"sales": ["models:/sales@champion", "models:/sales@challenger"]}, registry=registry.url,
                     split={"sales": "champion:50,challenger:50"}, reload_interval=0)
    client = TestClient(app)
    rows = frame[["row_id", *INPUTS]].head(200).to_dict(orient="records")
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in rows]

    def versions() -> set[str]:
        answer = client.post("/v1/models/sales:predict", json={"instances": rows})
        return {p["model_version"] for p in answer.json()["predictions"]}

    assert versions() == {"1", "2"}
    registry.set_alias("sales", "challenger", 3)
    [event] = app.state.models.reload()
    assert event.outcome == "loaded" and versions() == {"1", "3"}
    app.state.models.close()
    # a split that names version 1 itself: the alias may not take version 1 away
    pinned = create_app({"sales": ["models:/sales@champion", "models:/sales/3"]}, registry=registry.url,
                        split={"sales": "1:50,3:50"}, reload_interval=0)
    registry.set_alias("sales", "champion", 2)
    [event] = pinned.state.models.reload()
    assert event.outcome == "refused" and "version 1 is not served" in event.message
    assert list(pinned.state.models.versions("sales")) == [1, 3]
    pinned.state.models.close()
