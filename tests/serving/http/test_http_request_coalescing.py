"""Requests ready together are predicted in one call, and each gets exactly its own answer
(Stateless Serving Function, 16: serving/http/request_coalescing.py)."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlpatterns.serving.http import create_app
from mlpatterns.serving.http.request_coalescing import RowCoalescer
from mlpatterns.serving.online import InputError, OnlinePredictor, RowProblem

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]


def _fake_model(calls):
    def predict_rows(rows):
        calls.append(len(rows))
        if any("missing" in row for row in rows):
            raise InputError("a row lacks a field")
        if any(row.get("x") == "boom" for row in rows):
            raise RuntimeError("the model failed")
        problems = [RowProblem(i, "x", "expected a number") for i, row in enumerate(rows) if not isinstance(row["x"], int)]
        bad = {p.row for p in problems}
        return [{"id": row["id"], "y": 2 * row["x"]} for i, row in enumerate(rows) if i not in bad], problems
    return predict_rows


def test_requests_ready_together_share_one_call_and_get_their_own_rows_and_problems():
    calls = []
    coalescer = RowCoalescer(_fake_model(calls))
    requests = [[{"id": "a", "x": 1}, {"id": "b", "x": "two"}], [{"id": "c", "x": 3}],
                [{"id": "d", "x": "four"}, {"id": "e", "x": 5}, {"id": "f", "x": "six"}], []]

    async def main():
        return await asyncio.gather(*(coalescer.predict(rows) for rows in requests))

    answers = asyncio.run(main())
    assert calls == [6] and (coalescer.calls, coalescer.requests) == (1, 4)
    assert answers == [([{"id": "a", "y": 2}], [RowProblem(1, "x", "expected a number")]),
                       ([{"id": "c", "y": 6}], []),
                       ([{"id": "e", "y": 10}], [RowProblem(0, "x", "expected a number"),
                                                 RowProblem(2, "x", "expected a number")]),
                       ([], [])]
    alone = [_fake_model([])(rows) for rows in requests]
    assert answers == alone


def test_a_lone_request_is_predicted_at_once_and_a_later_one_in_a_new_call():
    calls = []
    coalescer = RowCoalescer(_fake_model(calls))

    async def main():
        first = await coalescer.predict([{"id": 1, "x": 1}])
        second = await coalescer.predict([{"id": 2, "x": 2}])
        return first, second

    assert asyncio.run(main()) == (([{"id": 1, "y": 2}], []), ([{"id": 2, "y": 4}], []))
    assert calls == [1, 1]


def test_one_requests_missing_field_fails_only_that_request():
    calls = []
    coalescer = RowCoalescer(_fake_model(calls))

    async def main():
        return await asyncio.gather(coalescer.predict([{"id": 1, "x": 1}]), coalescer.predict([{"id": 2, "missing": 1}]),
                                    return_exceptions=True)

    good, bad = asyncio.run(main())
    assert good == ([{"id": 1, "y": 2}], [])
    assert isinstance(bad, InputError)
    assert calls == [2, 1, 1]  # together, then each on its own


def test_a_model_failure_reaches_every_request_of_the_call():
    coalescer = RowCoalescer(_fake_model([]))

    async def main():
        return await asyncio.gather(coalescer.predict([{"id": 1, "x": 1}]), coalescer.predict([{"id": 2, "x": "boom"}]),
                                    return_exceptions=True)

    assert [type(a) for a in asyncio.run(main())] == [RuntimeError, RuntimeError]


def test_a_cancelled_request_does_not_stop_the_others():
    coalescer = RowCoalescer(_fake_model([]))

    async def main():
        gone = asyncio.ensure_future(coalescer.predict([{"id": 1, "x": 1}]))
        kept = asyncio.ensure_future(coalescer.predict([{"id": 2, "x": 2}]))
        await asyncio.sleep(0)  # both joined; the call is scheduled
        gone.cancel()
        return await kept

    assert asyncio.run(main()) == ([{"id": 2, "y": 4}], [])


@pytest.fixture(scope="module")
def trees(carseats, tmp_path_factory, spec_bundles):
    """A gradient-boosting bundle on Carseats (a tree ensemble: rows scored independently)."""
    frame, bundles = carseats
    bundle = spec_bundles(tmp_path_factory.mktemp("coalescing"), frame, "sales_gbm", {
        "target": {"column": "Sales"}, "keys": ["row_id"], "split": {"key": "row_id"},
        "features": {"numeric": ["Price", "Income", "Advertising"], "categorical": ["ShelveLoc", "Urban"]},
        "models": {"gradient_boosting": {"type": "gradient_boosting", "params": {"max_iter": 20}}},
    })["gradient_boosting"]
    return frame, bundle, bundles["sales"]


def test_which_models_share_calls(trees):
    frame, tree_bundle, linear_bundle = trees
    tree, linear = OnlinePredictor.load(tree_bundle), OnlinePredictor.load(linear_bundle)
    assert tree.row_independent and not linear.row_independent
    rows = frame[[*INPUTS, "row_id"]].head(64).to_dict(orient="records")
    features = tree.features(tree.conform_rows(rows)[0])
    alone = np.vstack([tree.model_output(features[i:i + 1]) for i in range(len(rows))])
    for size in (2, 7, 64):  # the claim RowCoalescer rests on: a tree's scores of a row do not depend on the call
        together = np.vstack([tree.model_output(features[i:i + size]) for i in range(0, len(rows), size)])
        assert np.array_equal(alone.view(np.uint32), together.view(np.uint32))


def test_concurrent_http_requests_are_coalesced_and_answered_as_alone(trees):
    frame, tree_bundle, _ = trees
    records = frame[[*INPUTS, "row_id"]].head(40).to_dict(orient="records")
    bodies = [{"instances": records[i:i + 3]} for i in range(0, 36, 3)]
    bodies += [{"instances": [dict(records[36], Price="free")]}, {"instances": records[37:40]}]
    app = create_app({"sales": tree_bundle}, reload_interval=0)
    with TestClient(app) as client:  # one at a time
        alone = [client.post("/v1/models/sales:predict", json=b) for b in bodies]
    model = app.state.models.find("sales")
    coalescer = model.coalescer
    calls_before = coalescer.calls

    async def together():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/v1/models/sales:predict", content=json.dumps(b))
                                          for b in bodies))

    answers = asyncio.run(together())
    assert [(a.status_code, a.content) for a in answers] == [(a.status_code, a.content) for a in alone]
    assert answers[-2].status_code == 400 and "row 0, field 'Price'" in answers[-2].json()["error"]
    assert coalescer.calls - calls_before < len(bodies)  # some requests shared a call
