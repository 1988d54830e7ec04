"""Stateless Serving Function (16) over the Open Inference Protocol v2 (KServe, Triton).

Problem: inference clients built for KServe or Triton (``tritonclient``, KServe's
Python SDK) speak named, typed tensors, not rows; they should reach a bundle unchanged.

Solution: the v2 routes answer for every served version: ``/v2/health/live``,
``/v2/health/ready`` (ready once every version is loaded and verified),
``/v2/models/NAME[/versions/V]`` (metadata with typed inputs and outputs, and every
served version), ``.../ready`` and ``POST .../infer``; without a version, the latest
answers, or the name's traffic split, which adds an output tensor ``model_version``
(BYTES) with the version that answered each row. Each input column is a tensor of shape ``[-1]``;
the bundle's key columns travel as input tensors of the same names and come back as
output tensors (Keyed Predictions, 20); the request's ``id`` is echoed. The body is
read raw, since ``tritonclient.http`` sends no Content-Type, and the binary tensor
extension (``Inference-Header-Content-Length``) is accepted for inputs; answers are JSON.
With ``"parameters": {"explain": true}`` (Explainable Predictions, 29) the answer adds one FP64
output tensor per attribution (``explain_<column>``, ``explain_baseline_score``,
``explain_check_error``); the default answer is unchanged.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import numpy as np
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

__all__ = ["PLATFORM", "open_inference_router"]

PLATFORM = "mlpatterns-onnx"
VERSION_OUTPUT = "model_version"  # with a traffic split: the version that answered each row (BYTES)
_INPUT_TYPES = {"boolean": "BOOL", "number": "FP64", "date": "BYTES", "text": "BYTES"}
_OUTPUT_TYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL"}
_KEY_TYPES = {"integer": "INT64", "float": "FP64", "boolean": "BOOL"}
_NUMPY = {"BOOL": "?", "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "UINT8": "u1",
          "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}


def _input_type(item: dict[str, Any]) -> str:
    if item["type"] == "number" and str(item.get("dtype", "")).startswith(("int", "Int")):
        return "INT64"
    return _INPUT_TYPES[item["type"]]


def _tensors(model: ServedModel) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The typed input and output tensors of a model's signature, keys included on both sides."""
    keys = [{"name": k, "datatype": _KEY_TYPES.get(model.key_kind(k), "BYTES"), "shape": [-1]}
            for k in model.key_columns]
    inputs = [{"name": i["name"], "datatype": _input_type(i), "shape": [-1]} for i in model.signature["inputs"]]
    outputs = [{"name": o["name"], "datatype": _OUTPUT_TYPES.get(o.get("type", ""), "BYTES"), "shape": [-1]}
               for o in model.signature["outputs"]]
    return inputs + keys, outputs + keys


def open_inference_router(models: ServedModels, limits: Limits, ready: Any) -> APIRouter:
    """The v2 routes over ``models``; ``ready()`` says whether every version is loaded and verified."""
    router = APIRouter(tags=["Open Inference Protocol v2"])

    def find(request: Request, name: str, version: str | None = None) -> Route:
        try:
            route = models.route(name, version)
        except NotServedError:
            known = name in models.names
            note_version(request, name if known else "")
            if not known:
                raise RequestError(f"unknown model '{name}'; served: {models.names}", 404) from None
            served = [str(v) for v in models.versions(name)]
            raise RequestError(f"model '{name}' has no version '{version}'; served: {served}", 404) from None
        note_version(request, route.name, route.model.version)
        return route

    # the infer routes first: the routes are matched in order, and inferences are most requests
    # bare Starlette routes, as TF Serving's :predict (see there); typed per model in the OpenAPI document
    async def infer(request: Request) -> Response:
        return json_answer(await _infer(find(request, request.path_params["name"]), request, limits))

    async def infer_version(request: Request) -> Response:
        params = request.path_params
        return json_answer(await _infer(find(request, params["name"], params["version"]), request, limits))

    router.add_route("/v2/models/{name}/infer", infer, methods=["POST"])
    router.add_route("/v2/models/{name}/versions/{version}/infer", infer_version, methods=["POST"])

    @router.get("/v2/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    @router.get("/v2/health/ready")
    def server_ready() -> Response:
        ok = bool(ready())
        return Response(f'{{"ready": {str(ok).lower()}}}', status_code=200 if ok else 503, media_type="application/json")

    @router.get("/v2")
    def server_metadata() -> dict[str, Any]:
        return {"name": "mlpatterns", "version": "1", "extensions": ["binary_tensor_data"]}

    def metadata(model: ServedModel) -> dict[str, Any]:
        inputs, outputs = _tensors(model)
        return {"name": model.name, "versions": [str(v) for v in models.versions(model.name)],
                "platform": PLATFORM, "inputs": inputs, "outputs": outputs}

    @router.get("/v2/models/{name}")
    def model_metadata(name: str, request: Request) -> dict[str, Any]:
        find(request, name)
        return metadata(models.find(name))  # the latest version, split or not

    @router.get("/v2/models/{name}/versions/{version}")
    def version_metadata(name: str, version: str, request: Request) -> dict[str, Any]:
        return metadata(find(request, name, version).model)

    @router.get("/v2/models/{name}/ready")
    def model_ready(name: str, request: Request) -> dict[str, Any]:
        return {"name": find(request, name).name, "ready": bool(ready())}

    @router.get("/v2/models/{name}/versions/{version}/ready")
    def version_ready(name: str, version: str, request: Request) -> dict[str, Any]:
        return {"name": find(request, name, version).name, "ready": bool(ready())}

    return router


def _split(request: Request, body: bytes) -> tuple[Any, bytes]:
    """The JSON header and the binary tail of a body (the tail is empty without the binary extension)."""
    header = request.headers.get("inference-header-content-length")
    if header is None:
        return parse_json(body), b""
    if not header.isdigit() or int(header) > len(body):
        raise RequestError(f"Inference-Header-Content-Length {header!r} does not fit a body of {len(body)} bytes")
    return parse_json(body[: int(header)]), body[int(header):]


def _binary(tensor: dict[str, Any], tail: bytes, at: int, size: int) -> list[Any]:
    """One tensor's values from the binary extension's bytes."""
    chunk, datatype = tail[at: at + size], tensor["datatype"]
    if len(chunk) != size:
        raise RequestError(f"input '{tensor['name']}': binary_data_size {size} runs past the body")
    if datatype == "BYTES":
        values, offset = [], 0
        while offset < size:
            if offset + 4 > size:
                raise RequestError(f"input '{tensor['name']}': a BYTES element's length runs past its data")
            (length,) = struct.unpack_from("<I", chunk, offset)
            values.append(chunk[offset + 4: offset + 4 + length].decode("utf-8", errors="replace"))
            offset += 4 + length
        return values
    if datatype not in _NUMPY or size % np.dtype(_NUMPY[datatype]).itemsize:
        raise RequestError(f"input '{tensor['name']}': {size} bytes do not hold {datatype} values")
    return np.frombuffer(chunk, dtype=_NUMPY[datatype]).tolist()


def _check_value(name: str, datatype: str, index: int, value: Any) -> None:
    problem = scalar_problem(value)
    ok = (value is None or (datatype == "BOOL" and isinstance(value, bool))
          or (datatype == "BYTES" and isinstance(value, str))
          or (datatype[:3] in ("INT", "UIN") and isinstance(value, int) and not isinstance(value, bool))
          or (datatype[:2] == "FP" and isinstance(value, (int, float)) and not isinstance(value, bool)))
    if problem or not ok:
        raise RequestError(f"row {index}, input '{name}': {problem or f'a {datatype} tensor cannot hold {value!r}'}")


def _flat(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    return [v for item in data for v in _flat(item)] if any(isinstance(d, list) for d in data) else data


async def _infer(route: Route, request: Request, limits: Limits) -> dict[str, Any]:
    model = route.model
    body, tail = _split(request, await read_json(request, limits))
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise RequestError("the body must be a JSON object with 'inputs', a list of tensors")
    columns: dict[str, list[Any]] = {}
    at = 0
    for position, tensor in enumerate(body["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str) or "datatype" not in tensor:
            raise RequestError(f"inputs[{position}]: each tensor needs a 'name', a 'datatype', a 'shape' and 'data'")
        name, datatype = tensor["name"], tensor["datatype"]
        if name not in model.fields:
            raise RequestError(f"unknown input '{name}'; the model '{model.name}' takes inputs "
                               f"{model.input_columns} and keys {model.key_columns}")
        if datatype != "BYTES" and datatype not in _NUMPY:
            raise RequestError(f"input '{name}': unknown datatype {datatype!r}")
        parameters = tensor.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise RequestError(f"input '{name}': 'parameters' must be an object, got {type(parameters).__name__}")
        size = parameters.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise RequestError(f"input '{name}': binary_data_size must be a whole number of bytes >= 0, "
                                   f"got {size!r}")
            values = _binary(tensor, tail, at, size)
            at += size
        elif "data" in tensor:
            values = _flat(tensor["data"])
        else:
            raise RequestError(f"input '{name}': no 'data'")
        for index, value in enumerate(values):
            _check_value(name, datatype, index, value)
        shape = tensor.get("shape")
        if isinstance(shape, list) and shape and all(isinstance(s, int) for s in shape) \
                and int(np.prod(shape)) != len(values):
            raise RequestError(f"input '{name}': shape {shape} does not match {len(values)} values")
        columns[name] = values
    missing = [f for f in model.fields if f not in columns]
    if missing:
        raise RequestError(f"missing input(s) {missing}")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise RequestError(f"the input tensors differ in length ({sorted(lengths)}); each needs one value per row")
    rows = lengths.pop()
    note_rows(request, rows)
    limits.check_rows(rows)
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError(f"'parameters' must be an object, got {type(parameters).__name__}")
    explainer_for = app_explainer(request) if explain_flag(parameters, "parameters.explain") else None
    if explainer_for is not None and route.split is not None:  # refused before any row is scored or logged
        raise RequestError("'parameters.explain' is answered by one version: ask /versions/V, not a traffic split")
    result, used = await route.answer_json(None, columns, rows)
    note_answer(request, route.name, model.version, rows, used)
    _, described = _tensors(model)
    if explainer_for is not None:  # Explainable Predictions (29): each row's attributions, as more output tensors
        explained = await asyncio.to_thread(model.explain, frame_of(model.fields, columns), explainer_for)
        result.update(explained)
        described = [*described, *({"name": n, "datatype": "FP64"} for n in explained)]
    wanted = [o.get("name") if isinstance(o, dict) else o for o in body.get("outputs") or []]
    unknown = [n for n in wanted if n not in result]
    if unknown:
        raise RequestError(f"unknown output(s) {unknown}; the model gives {list(result)}")
    keys = model.key_columns
    names = [*[n for n in wanted if n not in keys], *keys] if wanted else [d["name"] for d in described]
    datatypes = {d["name"]: d["datatype"] for d in described}
    sent = {t["name"]: t["datatype"] for t in body["inputs"]}
    answer: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": [
        {"name": n, "datatype": sent.get(n, datatypes[n]) if n in keys else datatypes[n], "shape": [rows],
         "data": result[n]} for n in names]}
    if used is not None:  # a traffic split: each row's version, and one model_version only if all rows had it
        answer["outputs"].append({"name": VERSION_OUTPUT, "datatype": "BYTES", "shape": [len(used)], "data": used})
        if len(set(used)) == 1:
            answer["model_version"] = used[0]
        else:
            del answer["model_version"]
    if "id" in body:
        answer["id"] = body["id"]
    return answer
