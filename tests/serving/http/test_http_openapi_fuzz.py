"""The typed OpenAPI document of the HTTP Stateless Serving Function (16), and schemathesis against it.

Each served bundle's signature becomes the request schema of its own predict and infer
paths; schemathesis generates requests from that document (valid ones and, by mutation,
invalid ones) and checks that the server never answers 5xx, that every status it gives is
documented and that every answer matches the documented shape. ``make test`` runs a
bounded number of cases per operation; the slow run (``make test-all``) over 10,000.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from mlpatterns.serving.http import create_app  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def app(carseats):
    _, bundles = carseats
    return create_app(bundles, access_log=False)


def test_each_model_has_typed_paths(app):
    document = app.openapi()
    paths = document["paths"]
    assert "/v1/models/{name}:predict" not in paths and "/v2/models/{name}/infer" not in paths
    row = (paths["/v1/models/us:predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
           ["oneOf"][0]["properties"]["instances"]["items"])
    assert row["required"] == ["Price", "Income", "Advertising", "ShelveLoc", "Urban", "row_id"]
    assert row["properties"]["Price"] == {"type": ["integer", "null"]}  # trained on whole numbers: 12.5 is refused
    assert row["properties"]["ShelveLoc"] == {"type": ["string", "null"]}
    assert row["properties"]["row_id"] == {"type": "integer"}  # a key is never null
    assert row["additionalProperties"] is False
    infer = paths["/v2/models/sales/infer"]["post"]
    tensors = infer["requestBody"]["content"]["application/json"]["schema"]["properties"]["inputs"]["items"]["oneOf"]
    assert {t["properties"]["name"]["const"] for t in tensors} == {"Price", "Income", "Advertising", "ShelveLoc",
                                                                  "Urban", "row_id"}
    assert set(infer["responses"]) >= {"200", "400", "404", "413"}
    assert "422" not in paths["/v1/models/{name}"]["get"]["responses"]  # the server never answers 422


def _fuzz(app, operations: list[str], examples: int) -> int:
    """Run ``examples`` generated cases against each operation; the number of cases run."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ran = 0
    for label in operations:
        operation = schema.find_operation_by_label(label)
        assert operation is not None, label

        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            nonlocal ran
            ran += 1
            case.call_and_validate(checks=CHECKS)

        run()
    return ran


PREDICT = ["POST /v1/models/us:predict", "POST /v2/models/us/infer", "POST /v1/models/sales:predict",
           "POST /v2/models/sales/infer"]
READ = ["GET /v1/models/{name}", "GET /v1/models/{name}/metadata", "GET /v2/models/{name}",
        "GET /v2/models/{name}/ready", "GET /v2/health/ready"]


def test_generated_requests_never_break_the_server(app):
    assert _fuzz(app, PREDICT, examples=25) >= 50
    _fuzz(app, READ, examples=5)


@pytest.mark.slow
def test_ten_thousand_generated_requests(app):
    assert _fuzz(app, PREDICT, examples=2600) >= 10_000


def test_versions_labels_and_splits_are_documented(carseats):
    _, bundles = carseats
    app = create_app({"sales": {1: bundles["sales"], 2: bundles["sales"]}}, labels={"sales": {"stable": 1}},
                     split={"sales": "1:90,2:10"}, access_log=False)
    paths = app.openapi()["paths"]
    for path in ("/v1/models/sales:predict", "/v1/models/sales/versions/1:predict",
                 "/v1/models/sales/versions/2:predict", "/v1/models/sales/labels/stable:predict",
                 "/v2/models/sales/infer", "/v2/models/sales/versions/2/infer"):
        assert "post" in paths[path], path
    assert "/v2/models/sales/labels/stable/infer" not in paths  # the v2 protocol has no labels

    def answered(path: str) -> dict:
        schema = paths[path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        return schema["oneOf"][0]["properties"]["predictions"]["items"]["properties"]

    assert answered("/v1/models/sales:predict")["model_version"] == {"type": ["string", "null"]}  # the split's
    assert "model_version" not in answered("/v1/models/sales/versions/1:predict")  # a version asked for


def test_the_document_is_built_once_per_set_of_versions(carseats):
    _, bundles = carseats
    app = create_app({"sales": bundles["sales"]}, access_log=False)
    assert "/v1/models/sales/versions/1:predict" in app.openapi()["paths"]
    assert app.openapi() is app.openapi()  # built once while the versions stay the same
