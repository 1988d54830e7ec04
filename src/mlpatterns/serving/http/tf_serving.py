"""Stateless Serving Function (16) over TensorFlow Serving's REST API.

Problem: clients written for TensorFlow Serving (curl scripts, the REST examples of its
documentation, existing services) should call a bundle without a new client library.

Solution: the routes of TF Serving's REST API answer for every served version:
``GET /v1/models/NAME`` (the status of every version), ``.../metadata`` (the signature),
``POST /v1/models/NAME[/versions/N | /labels/LABEL]:predict`` with ``instances`` (row
format, answered with ``predictions``, each row carrying its key columns: Keyed
Predictions, 20) or ``inputs`` (columnar format, answered with ``outputs``). Without a
version the latest answers, or the name's traffic split, which adds the version that
answered each row (``model_version`` in each prediction, or an output list of that name).
With ``"explain": true`` in the body (Explainable Predictions, 29) each prediction also carries
its attributions to the raw input columns (``explain_<column>``, ``explain_baseline_score``,
``explain_check_error``; see :meth:`ServedModel.explain`); the default answer is unchanged.
Errors take TF Serving's shape, ``{"error": "..."}``: 400 for a malformed body or a bad
row (the message names the row and the field), 404 for an unknown model, version or
label, 413 beyond the request limits.
``:classify``, ``:regress`` and custom signatures are not served.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response

from mlpatterns.serving.http._common import (
    Limits,
    RequestError,
    ServedModel,
    app_explainer,
    explain_flag,
    frame_of,
    json_answer,
    note_answer,
    note_rows,
    note_version,
    parse_json,
    read_json,
    scalar_problem,
)
from mlpatterns.serving.http.served_models import NotServedError, Route, ServedModels

_PRECOMPUTED_SHOWN = ("bundle", "manifest_sha256", "created", "rows")  # no server paths
VERSION_FIELD = "model_version"  # with a traffic split: the version that answered each row

__all__ = ["tf_serving_router"]


def _status(model: ServedModel) -> dict[str, Any]:
    return {"version": model.version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


def tf_serving_router(models: ServedModels, limits: Limits) -> APIRouter:
    """The TF Serving REST routes over ``models`` (every version and label of every name)."""
    router = APIRouter(tags=["TensorFlow Serving REST"])

    def find(request: Request, name: str, version: str | None = None, label: str | None = None) -> Route:
        try:
            route = models.route(name, version, label)
        except NotServedError as error:
            note_version(request, name if name in models.names else "")
            if error.label is not None:
                raise RequestError(f"Unrecognized servable version label: {label}", 404) from None
            spec = f"Latest({name})" if error.version is None else f"Specific({name}, {version})"
            raise RequestError(f"Servable not found for request: {spec}", 404) from None
        note_version(request, route.name, route.model.version)
        return route

    # the predict routes first: the routes are matched in order, and predictions are most requests
    async def predict(request: Request, route: Route) -> dict[str, Any]:
        body = parse_json(await read_json(request, limits))
        if not isinstance(body, dict):
            raise RequestError("the body must be a JSON object with 'instances' or 'inputs'")
        if body.get("signature_name", "serving_default") != "serving_default":
            raise RequestError(f"unknown signature_name {body['signature_name']!r}; only 'serving_default' is served")
        if ("instances" in body) == ("inputs" in body):
            raise RequestError("the body must hold exactly one of 'instances' (row format) or 'inputs' (columnar format)")
        rows = "instances" in body
        explainer_for = app_explainer(request) if explain_flag(body) else None
        if explainer_for is not None and route.split is not None:  # refused before any row is scored or logged
            raise RequestError("'explain' is answered by one version: ask /versions/N or a label, not a "
                               "traffic split")
        if rows:
            instances, inputs = _rows(route.model, body["instances"], limits), None
            count = len(instances)
        else:
            instances, (inputs, count) = None, _columns(route.model, body["inputs"], limits)
        note_rows(request, count)
        columns, used = await route.answer_json(instances, inputs, count)
        note_answer(request, route.name, route.model.version, count, used)
        if explainer_for is not None:  # Explainable Predictions (29): each row's attributions next to its prediction
            given = inputs if inputs is not None else {f: [row[f] for row in instances] for f in route.model.fields}
            frame = frame_of(route.model.fields, given)
            columns.update(await asyncio.to_thread(route.model.explain, frame, explainer_for))
        if used is not None:
            columns[VERSION_FIELD] = used
        if rows:
            return {"predictions": [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]}
        return {"outputs": columns}

    # bare Starlette routes: FastAPI's parameter solving and response encoding would cost more than the
    # online path itself; the OpenAPI document describes them typed, per model (openapi_signatures)
    async def predict_latest(request: Request) -> Response:
        return json_answer(await predict(request, find(request, request.path_params["name"])))

    async def predict_version(request: Request) -> Response:
        params = request.path_params
        return json_answer(await predict(request, find(request, params["name"], params["version"])))

    async def predict_label(request: Request) -> Response:
        params = request.path_params
        return json_answer(await predict(request, find(request, params["name"], label=params["label"])))

    router.add_route("/v1/models/{name}:predict", predict_latest, methods=["POST"])
    router.add_route("/v1/models/{name}/versions/{version}:predict", predict_version, methods=["POST"])
    router.add_route("/v1/models/{name}/labels/{label}:predict", predict_label, methods=["POST"])

    @router.get("/v1/models/{name}")
    def status(name: str, request: Request) -> dict[str, Any]:
        find(request, name)
        return {"model_version_status": [_status(m) for m in reversed(models.versions(name).values())]}

    @router.get("/v1/models/{name}/versions/{version}")
    def version_status(name: str, version: str, request: Request) -> dict[str, Any]:
        return {"model_version_status": [_status(find(request, name, version).model)]}

    @router.get("/v1/models/{name}/labels/{label}")
    def label_status(name: str, label: str, request: Request) -> dict[str, Any]:
        return {"model_version_status": [_status(find(request, name, label=label).model)]}

    def metadata(model: ServedModel) -> dict[str, Any]:
        signature = model.signature
        served = {"inputs": signature["inputs"], "keys": signature.get("keys", []), "outputs": signature["outputs"],
                  "method_name": "predict", "task": model.task}
        if "precomputed" in signature:  # a table of precomputed predictions: the bundle that computed them
            served["precomputed"] = {k: v for k, v in signature["precomputed"].items() if k in _PRECOMPUTED_SHOWN}
        return {"model_spec": {"name": model.name, "signature_name": "", "version": model.version},
                "metadata": {"signature_def": {"signature_def": {"serving_default": served}}}}

    @router.get("/v1/models/{name}/metadata")
    def latest_metadata(name: str, request: Request) -> dict[str, Any]:
        find(request, name)
        return metadata(models.find(name))  # the latest version, split or not

    @router.get("/v1/models/{name}/versions/{version}/metadata")
    def version_metadata(name: str, version: str, request: Request) -> dict[str, Any]:
        return metadata(find(request, name, version).model)

    @router.get("/v1/models/{name}/labels/{label}/metadata")
    def label_metadata(name: str, label: str, request: Request) -> dict[str, Any]:
        return metadata(find(request, name, label=label).model)

    return router


def _unknown(model: ServedModel, names: Any, where: str) -> None:
    unknown = [n for n in names if n not in model.fields]
    if unknown:
        raise RequestError(f"{where}: unknown field(s) {unknown}; the model '{model.name}' takes inputs "
                           f"{model.input_columns} and keys {model.key_columns}")


def _rows(model: ServedModel, instances: Any, limits: Limits) -> list[dict[str, Any]]:
    """The row format: a list of objects, each one row, checked field by field."""
    if not isinstance(instances, list):
        raise RequestError("'instances' must be a list of objects, one per row")
    limits.check_rows(len(instances))
    for index, row in enumerate(instances):
        if not isinstance(row, dict):
            raise RequestError(f"row {index}: expected an object of named fields, got {type(row).__name__}")
        _unknown(model, row, f"row {index}")
        missing = [f for f in model.fields if f not in row]
        if missing:
            raise RequestError(f"row {index}: missing field(s) {missing}")
        for field, value in row.items():
            problem = scalar_problem(value)
            if problem:
                raise RequestError(f"row {index}, field '{field}': {problem}")
    return instances


def _columns(model: ServedModel, inputs: Any, limits: Limits) -> tuple[dict[str, list[Any]], int]:
    """The columnar format: an object of equal-length lists, one per field; and the number of rows."""
    if not isinstance(inputs, dict):
        raise RequestError("'inputs' must be an object of named lists (the columnar format)")
    _unknown(model, inputs, "inputs")
    missing = [f for f in model.fields if f not in inputs]
    if missing:
        raise RequestError(f"inputs: missing field(s) {missing}")
    lengths = set()
    for field in model.fields:
        values = inputs[field]
        if not isinstance(values, list):
            raise RequestError(f"inputs, field '{field}': expected a list of values, got {type(values).__name__}")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise RequestError(f"inputs: the lists differ in length ({sorted(lengths)}); each field needs one value per row")
    count = lengths.pop() if lengths else 0
    limits.check_rows(count)
    for field in model.fields:
        for index, value in enumerate(inputs[field]):
            problem = scalar_problem(value)
            if problem:
                raise RequestError(f"row {index}, field '{field}': {problem}")
    return {f: inputs[f] for f in model.fields}, count
