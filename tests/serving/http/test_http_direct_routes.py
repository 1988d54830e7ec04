"""Predictions answered before FastAPI's dispatch (Stateless Serving Function, 16) are the
answers FastAPI's routes give, byte for byte, and still pass the server's auth and metrics."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from mlpatterns.serving.http import create_app
from mlpatterns.serving.http._common import RequestError
from mlpatterns.serving.http.direct_routes import DirectRoutes

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]


def _without_direct_routes(app):
    """The same app, its predictions dispatched by FastAPI (the middleware taken out of its stack)."""
    app.user_middleware = [m for m in app.user_middleware if m.cls is not DirectRoutes]
    app.middleware_stack = None  # rebuilt on the next request
    return app


def _requests(frame):
    rows = frame.head(3)[[*INPUTS, "row_id"]].to_dict(orient="records")
    bad = [dict(rows[0], Price="cheap"), dict(rows[1], ShelveLoc=7)]
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    tensors = [{"name": k, "datatype": "FP64" if isinstance(v[0], float) else "INT64" if isinstance(v[0], int) else
                "BYTES", "shape": [3], "data": v} for k, v in columns.items()]
    return [
        ("post", "/v1/models/sales:predict", {"instances": rows}),
        ("post", "/v1/models/sales/versions/1:predict", {"inputs": columns}),
        ("post", "/v1/models/us:predict", {"instances": rows}),
        ("post", "/v1/models/sales:predict", {"instances": bad}),
        ("post", "/v1/models/sales:predict", {"instances": [{"Price": 1}]}),
        ("post", "/v1/models/sales:predict", b"{not json"),
        ("post", "/v1/models/nope:predict", {"instances": rows}),
        ("post", "/v1/models/sales/versions/9:predict", {"instances": rows}),
        ("post", "/v1/models/sales/labels/nope:predict", {"instances": rows}),
        ("post", "/v2/models/us/infer", {"id": "r1", "inputs": tensors}),
        ("post", "/v2/models/us/versions/1/infer", {"inputs": tensors, "outputs": [{"name": "probability"}]}),
        ("post", "/v2/models/us/infer", {"inputs": tensors[:2]}),
        ("post", "/v2/models/nope/infer", {"inputs": tensors}),
        ("get", "/v1/models/sales:predict", None),  # not a direct route's method: FastAPI answers
        ("get", "/v2/models/us/infer", None),
    ]


def _answers(app, requests):
    with TestClient(app) as client:
        answers = []
        for method, path, body in requests:
            if method == "get":
                response = client.get(path)
            else:
                content = body if isinstance(body, bytes) else json.dumps(body).encode()
                response = client.post(path, content=content)
            answers.append((path, response.status_code, response.content))
        return answers


def test_direct_routes_answer_what_fastapis_routes_answer(carseats):
    frame, bundles = carseats
    requests = _requests(frame)
    direct = _answers(create_app(bundles, reload_interval=0), requests)
    routed = _answers(_without_direct_routes(create_app(bundles, reload_interval=0)), requests)
    assert direct == routed
    statuses = [status for _, status, _ in direct]
    # GET ...:predict reads as the status of a model named "sales:predict" (404), as in TF Serving
    assert statuses == [200, 200, 200, 400, 400, 400, 404, 404, 404, 200, 200, 400, 404, 404, 405]
    assert json.loads(direct[9][2])["id"] == "r1"


def test_direct_routes_still_pass_auth_and_metrics(carseats):
    frame, bundles = carseats
    rows = frame.head(2)[[*INPUTS, "row_id"]].to_dict(orient="records")
    with TestClient(create_app(bundles, reload_interval=0, token="s3cret-token")) as client:
        refused = client.post("/v1/models/sales:predict", json={"instances": rows})
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        auth = {"Authorization": "Bearer s3cret-token"}
        assert client.post("/v1/models/sales:predict", json={"instances": rows}, headers=auth).status_code == 200
        assert client.post("/v1/models/sales:predict", json={"instances": []}, headers=auth).status_code == 200
        assert client.post("/v1/models/sales:predict", json={"instances": [{}]}, headers=auth).status_code == 400
        metrics = client.get("/metrics", headers=auth).text
    ok = 'mlpatterns_http_requests_total{code="200",model="sales",protocol="tf_serving",version="1"} 2.0'
    bad = 'mlpatterns_http_errors_total{code="400",model="sales",protocol="tf_serving",version="1"} 1.0'
    assert ok in metrics and bad in metrics
    assert 'mlpatterns_http_predicted_rows_total{model="sales",version="1"} 2.0' in metrics
    assert 'code="401",model="",protocol="tf_serving",version=""} 1.0' in metrics


async def _echo(request):
    body = await request.json()
    if "fail" in body:
        raise RequestError(f"refused: {body['fail']}", 418)
    return JSONResponse({"name": request.path_params["name"], **body})


async def _app_answer(scope, receive, send):
    await JSONResponse({"answered_by": "app"})(scope, receive, send)


@pytest.mark.parametrize(("method", "path", "body", "status", "answer"), [
    ("POST", "/things/a:go", {"x": 1}, 200, {"name": "a", "x": 1}),
    ("POST", "/things/a:go", {"fail": "no"}, 418, {"error": "refused: no"}),
    ("GET", "/things/a:go", None, 200, {"answered_by": "app"}),  # another method: the app's
    ("POST", "/things/a/b:go", {}, 200, {"answered_by": "app"}),  # no match: the app's
    ("POST", "/other", {}, 200, {"answered_by": "app"}),
])
def test_direct_routes_on_their_own(method, path, body, status, answer):
    routes = [Route("/things/{name}:go", _echo, methods=["POST"]), Route("/things/{name}:look", _echo, methods=["GET"])]
    app = Starlette()
    app.add_middleware(DirectRoutes, routes=routes)
    app.mount("/", _app_answer)
    with TestClient(app) as client:
        response = client.request(method, path, content=None if body is None else json.dumps(body))
    assert (response.status_code, response.json()) == (status, answer)
