"""Operations around the HTTP Stateless Serving Function (16): Prometheus metrics, the access
log and bearer-token auth, through FastAPI's TestClient on real bundles."""

from __future__ import annotations

import logging
import os

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mlpatterns.serving.http import ACCESS_LOGGER, TokenFileError, create_app, token_from_file

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]


def _rows(frame, n):
    rows = frame[["row_id", *INPUTS]].head(n).to_dict(orient="records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in rows]


def _samples(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def _labels(model, version, protocol, code):
    return frozenset({"model": model, "version": version, "protocol": protocol, "code": code}.items())


def test_metrics_count_what_was_sent(carseats):
    frame, bundles = carseats
    client = TestClient(create_app(bundles))
    for _ in range(3):
        assert client.post("/v1/models/sales:predict", json={"instances": _rows(frame, 4)}).status_code == 200
    for _ in range(2):
        assert client.post("/v1/models/sales:predict", json={"instances": [{"Price": "x"}]}).status_code == 400
    assert client.post("/v1/models/sales/versions/1:predict", json={"instances": _rows(frame, 2)}).status_code == 200
    assert client.post("/v1/models/sales/versions/7:predict", json={"instances": _rows(frame, 2)}).status_code == 404
    assert client.post("/v1/models/made-up:predict", json={"instances": []}).status_code == 404
    assert client.get("/v2/models/us").status_code == 200
    assert client.get("/v2/health/live").status_code == 200

    samples = _samples(client)
    requests = {labels: v for (name, labels), v in samples.items() if name == "mlpatterns_http_requests_total"}
    assert requests == {
        _labels("sales", "1", "tf_serving", "200"): 4, _labels("sales", "1", "tf_serving", "400"): 2,
        _labels("sales", "", "tf_serving", "404"): 1, _labels("", "", "tf_serving", "404"): 1,
        _labels("us", "1", "open_inference", "200"): 1, _labels("", "", "open_inference", "200"): 1}
    errors = {labels: v for (name, labels), v in samples.items() if name == "mlpatterns_http_errors_total"}
    assert errors == {_labels("sales", "1", "tf_serving", "400"): 2, _labels("sales", "", "tf_serving", "404"): 1,
                      _labels("", "", "tf_serving", "404"): 1}
    counts = {dict(labels)["model"] + "/" + dict(labels)["version"]: v for (name, labels), v in samples.items()
              if name == "mlpatterns_http_request_duration_seconds_count"}
    assert counts == {"sales/1": 6, "sales/": 1, "us/1": 1, "/": 2}
    assert samples[("mlpatterns_http_request_duration_seconds_sum", frozenset({"model": "sales", "version": "1"}.items()))] > 0

    # the /metrics request itself is counted afterwards; each app has its own registry
    again = _samples(client)
    assert again[("mlpatterns_http_requests_total", _labels("", "", "other", "200"))] == 1
    other = TestClient(create_app(bundles))
    assert not any(name == "mlpatterns_http_requests_total" for name, _ in _samples(other))


def test_metrics_can_be_turned_off(carseats):
    client = TestClient(create_app(carseats[1], metrics=False))
    assert client.get("/metrics").status_code == 404


def test_access_log_has_one_line_per_request(carseats, caplog):
    frame, bundles = carseats
    client = TestClient(create_app(bundles))
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        client.post("/v1/models/sales:predict", json={"instances": _rows(frame, 3)})
        client.post("/v1/models/us:predict", json={"inputs": {"Price": [1]}})
        client.get("/v1/models/nope")
    records = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert len(records) == 3
    first, bad, missing = records
    assert first.getMessage().startswith("POST /v1/models/sales:predict 200 model=sales/1 rows=3 ms=")
    assert (first.method, first.path, first.status, first.model, first.version, first.rows) == (
        "POST", "/v1/models/sales:predict", 200, "sales", "1", 3)
    assert first.ms > 0 and first.levelno == logging.INFO
    assert bad.status == 400 and bad.model == "us" and bad.rows is None
    assert missing.getMessage().startswith("GET /v1/models/nope 404 model=- rows=- ms=")


def test_access_log_can_be_turned_off(carseats, caplog):
    client = TestClient(create_app(carseats[1], access_log=False))
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        client.get("/v1/models/sales")
    assert not [r for r in caplog.records if r.name == ACCESS_LOGGER]


TOKEN = "s3cret-Token_1"


@pytest.fixture(scope="module")
def guarded(carseats):
    return TestClient(create_app(carseats[1], token=TOKEN))


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready"])
def test_probes_answer_without_the_token(guarded, path):
    assert guarded.get(path).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Bearer "}, {"Authorization": TOKEN}])
@pytest.mark.parametrize("method,path", [("GET", "/v1/models/sales"), ("POST", "/v1/models/sales:predict"),
                                         ("GET", "/v2/models/us"), ("POST", "/v2/models/us/infer"),
                                         ("GET", "/v2"), ("GET", "/metrics"), ("GET", "/docs")])
def test_everything_else_needs_the_token(guarded, headers, method, path):
    response = guarded.request(method, path, headers=headers, json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert set(response.json()) == {"error"}


def test_the_token_opens_every_endpoint(guarded, carseats):
    frame, _ = carseats
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.get("/v1/models/sales", headers=headers).status_code == 200
    assert guarded.post("/v1/models/sales:predict", headers=headers,
                        json={"instances": _rows(frame, 2)}).status_code == 200
    assert guarded.get("/metrics", headers={"authorization": f"bearer {TOKEN}"}).status_code == 200
    refused = _samples_with(guarded, headers)
    # refused before routing: counted, without model and version
    assert refused[("mlpatterns_http_requests_total", _labels("", "", "tf_serving", "401"))] >= 1


def _samples_with(client, headers):
    text = client.get("/metrics", headers=headers).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.parametrize("token", ["", " padded ", "two words", "caf\u00e9"])
def test_unusable_tokens_are_refused(carseats, token):
    with pytest.raises(ValueError, match="bearer token"):
        create_app(carseats[1], token=token)


def test_token_from_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    path.chmod(0o600)
    assert token_from_file(path) == TOKEN
    path.write_text(" \n")
    with pytest.raises(TokenFileError, match="empty"):
        token_from_file(path)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_token_file_open_to_others_is_refused(tmp_path, mode):
    path = tmp_path / "token"
    path.write_text(TOKEN)
    path.chmod(mode)
    with pytest.raises(TokenFileError) as error:
        token_from_file(path)
    assert str(path) in str(error.value) and "0600" in str(error.value)


def test_missing_token_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        token_from_file(tmp_path / "absent")


def test_mlpatterns_serve_prints_the_apps_access_log_in_place_of_uvicorns(carseats, tmp_path):
    """``mlpatterns serve`` shows one line a request naming the model, version and rows (and not
    uvicorn's own line as well); ``--log-level warning`` shows none."""
    import httpx

    from mlpatterns.testing.load_generator import serve_process

    frame, bundles = carseats
    rows = frame.head(2)[["Price", "Income", "Advertising", "ShelveLoc", "Urban", "row_id"]].to_dict(orient="records")
    for level, shown in (("info", True), ("warning", False)):
        log = tmp_path / f"{level}.log"
        with log.open("w") as out, serve_process([f"sales={bundles['sales']}", "--log-level", level], stdout=out) as (_, base):
            assert httpx.post(f"{base}/v1/models/sales:predict", json={"instances": rows}).status_code == 200
        text = log.read_text()
        lines = [line for line in text.splitlines() if "/v1/models/sales:predict" in line]
        if shown:
            assert len(lines) == 1 and "POST /v1/models/sales:predict 200 model=sales/1 rows=2 ms=" in lines[0], text
            assert "client=127.0.0.1:" in lines[0]
        else:
            assert lines == [], text
