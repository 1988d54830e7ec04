"""Stateless Serving Function (16): a typed OpenAPI document generated from each bundle's signature.

Problem: the wire protocols route every model through one generic path
(``/v1/models/{name}:predict``) whose body the server reads raw, so FastAPI's generated
document says nothing about what a model takes: a client cannot generate code from it
and an API fuzzer cannot aim at the real inputs.

Solution: :func:`typed_openapi` rewrites the document FastAPI builds: each served
model (and version) gets its own concrete paths, ``/v1/models/NAME:predict`` (row and
columnar formats) and ``/v2/models/NAME/infer`` (named tensors), whose request bodies are
JSON schemas built from the bundle's signature: every input with its JSON type (a
number, an integer, a boolean, an ISO 8601 date, a text; ``null`` allowed, since a
missing value is imputed as in training), every key column (never null), the row limit,
and the answers' shapes, including the ``{"error": ...}`` of a refused request. The
generic POST paths leave the document; they still answer. The document describes what
a well-formed request looks like; the server checks every request itself and names the
row and field of what it refuses.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelDocument", "input_schema", "key_schema", "typed_openapi"]

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_ERRORS = {"400": "a malformed request or a bad row (the message names the row and field)",
           "401": "a missing or wrong bearer token",
           "404": "an unknown model, version or label (or, for a table of precomputed predictions, a key never scored)",
           "413": "a request beyond the size or row limits",
           "503": "not ready: still loading, or draining before a shutdown (or a batch path that failed to load)"}
_OUTPUT_JSON = {"number": ["number", "null"], "integer": ["integer", "null"], "boolean": ["boolean", "null"],
                "text": ["string", "null"]}
_KEY_JSON = {"integer": "integer", "float": "number", "boolean": "boolean"}
_INPUT_DATATYPES = {"boolean": ["BOOL"], "integer": ["INT64", "INT32", "FP64"], "number": ["FP64", "FP32", "INT64"],
                    "date": ["BYTES"], "text": ["BYTES"]}
_KEY_DATATYPES = {"integer": ["INT64", "INT32"], "float": ["FP64"], "boolean": ["BOOL"]}
_GENERIC = ("/v1/models/{name}", "/v2/models/{name}")


@dataclass(frozen=True)
class ModelDocument:
    """What the document says about one served model (or one version of it).

    ``name`` and ``version`` or ``label`` (neither: the paths without a version), the bundle's
    ``signature`` (inputs, keys, outputs), the JSON kind of each key column
    (``key_kinds``, from the training statistics: integer, float, boolean, text) and
    ``extra_outputs``, answered fields beyond the signature (e.g. ``model_version``).
    """

    name: str
    version: str | None
    signature: Mapping[str, Any]
    key_kinds: Mapping[str, str] = field(default_factory=dict)
    extra_outputs: Mapping[str, str] = field(default_factory=dict)
    label: str | None = None

    @property
    def prefix(self) -> str:
        if self.label is not None:
            return f"{self.name}/labels/{self.label}"
        return self.name if self.version is None else f"{self.name}/versions/{self.version}"


def _input_kind(item: Mapping[str, Any]) -> str:
    if item["type"] == "number" and str(item.get("dtype", "")).startswith(("int", "Int", "uint", "UInt")):
        return "integer"
    return str(item["type"])


def input_schema(item: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON schema of one input value (a signature's input item); null means missing."""
    kind = _input_kind(item)
    if kind == "date":
        return {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"},
                          {"type": "null"}]}
    if kind == "boolean":
        return {"type": ["boolean", "null"]}
    json_type = {"integer": "integer", "number": "number"}.get(kind, "string")
    return {"type": [json_type, "null"]}


def key_schema(kind: str) -> dict[str, Any]:
    """The JSON schema of a key value of a column of ``kind`` (never null: every row needs its key)."""
    return {"type": _KEY_JSON.get(kind, "string")}


def _fields(model: ModelDocument) -> dict[str, dict[str, Any]]:
    fields = {item["name"]: input_schema(item) for item in model.signature["inputs"]}
    fields.update({key: key_schema(model.key_kinds.get(key, "text")) for key in model.signature.get("keys", [])})
    return fields


def _outputs(model: ModelDocument) -> dict[str, dict[str, Any]]:
    outputs = {item["name"]: {"type": _OUTPUT_JSON.get(str(item.get("type", "")), ["number", "string", "null"])}
               for item in model.signature["outputs"]}
    for name, kind in model.extra_outputs.items():
        outputs[name] = {"type": _OUTPUT_JSON.get(kind, ["string", "null"])}
    outputs.update({key: key_schema(model.key_kinds.get(key, "text")) for key in model.signature.get("keys", [])})
    return outputs


def _errors(codes: Iterable[str]) -> dict[str, Any]:
    return {code: {"description": _ERRORS[code], "content": {"application/json": {"schema": ERROR}}} for code in codes}


def _tf_serving(model: ModelDocument, max_rows: int) -> dict[str, Any]:
    fields, outputs = _fields(model), _outputs(model)
    names = list(fields)
    row = {"type": "object", "properties": fields, "required": names, "additionalProperties": False}
    rows = {"type": "object", "additionalProperties": False, "required": ["instances"],
            "properties": {"signature_name": {"type": "string", "enum": ["serving_default"]},
                           "instances": {"type": "array", "items": row, "maxItems": max_rows}}}
    columns = {"type": "object", "additionalProperties": False, "required": ["inputs"],
               "properties": {"signature_name": {"type": "string", "enum": ["serving_default"]},
                              "inputs": {"type": "object", "additionalProperties": False, "required": names,
                                         "properties": {n: {"type": "array", "items": s, "maxItems": max_rows}
                                                        for n, s in fields.items()}}}}
    answer_row = {"type": "object", "properties": outputs, "required": list(outputs)}
    answer = {"oneOf": [
        {"type": "object", "required": ["predictions"],
         "properties": {"predictions": {"type": "array", "items": answer_row}}},
        {"type": "object", "required": ["outputs"],
         "properties": {"outputs": {"type": "object", "required": list(outputs),
                                    "properties": {n: {"type": "array", "items": s} for n, s in outputs.items()}}}}]}
    return {"post": {
        "tags": ["TensorFlow Serving REST"], "summary": f"Predict with {model.prefix}",
        "operationId": f"tf_predict_{model.prefix.replace('/', '_')}",
        "description": "Rows (`instances`) or columns (`inputs`); each prediction carries its keys.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [rows, columns]}}}},
        "responses": {"200": {"description": "keyed predictions",
                              "content": {"application/json": {"schema": answer}}},
                      **_errors(["400", "401", "404", "413", "503"])}}}


def _tensor(name: str, datatypes: list[str], value: dict[str, Any], max_rows: int) -> dict[str, Any]:
    return {"type": "object", "required": ["name", "datatype", "shape", "data"],
            "properties": {"name": {"const": name}, "datatype": {"type": "string", "enum": datatypes},
                           "shape": {"type": "array", "items": {"type": "integer", "minimum": 0},
                                     "minItems": 1, "maxItems": 1},
                           "data": {"type": "array", "items": value, "maxItems": max_rows},
                           "parameters": {"type": "object"}}}


def _open_inference(model: ModelDocument, max_rows: int) -> dict[str, Any]:
    tensors = [_tensor(item["name"], _INPUT_DATATYPES[_input_kind(item)], input_schema(item), max_rows)
               for item in model.signature["inputs"]]
    tensors += [_tensor(key, _KEY_DATATYPES.get(model.key_kinds.get(key, "text"), ["BYTES"]),
                        key_schema(model.key_kinds.get(key, "text")), max_rows)
                for key in model.signature.get("keys", [])]
    count = len(tensors)
    body = {"type": "object", "required": ["inputs"],
            "properties": {"id": {"type": "string"},
                           "inputs": {"type": "array", "items": {"oneOf": tensors}, "minItems": count,
                                      "maxItems": count},
                           "outputs": {"type": "array", "items": {
                               "type": "object", "required": ["name"],
                               "properties": {"name": {"type": "string", "enum": list(_outputs(model))}}}}}}
    out = {"type": "object", "required": ["name", "datatype", "shape", "data"],
           "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                          "shape": {"type": "array", "items": {"type": "integer"}}, "data": {"type": "array"}}}
    answer = {"type": "object", "required": ["model_name", "outputs"],
              "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                             "id": {"type": "string"}, "outputs": {"type": "array", "items": out}}}
    return {"post": {
        "tags": ["Open Inference Protocol v2"], "summary": f"Infer with {model.prefix}",
        "operationId": f"v2_infer_{model.prefix.replace('/', '_')}",
        "description": "Named, typed tensors of shape [rows]: every input and every key column.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": {"description": "the output tensors, keys included",
                              "content": {"application/json": {"schema": answer}}},
                      **_errors(["400", "401", "404", "413", "503"])}}}


def typed_openapi(document: Mapping[str, Any], models: Iterable[ModelDocument], *, max_rows: int) -> dict[str, Any]:
    """``document`` (FastAPI's OpenAPI) with typed predict and infer paths for each of ``models``.

    The generic POST paths of both protocols are taken out of the copy returned, the
    other operations document the server's error answers (400, 401, 404) in place of
    FastAPI's 422, which the server never gives; each
    model gets ``/v1/models/{prefix}:predict`` and ``/v2/models/{prefix}/infer``, where
    the prefix is ``NAME`` or ``NAME/versions/V``; a label, ``/v1/models/NAME/labels/L:predict``
    only (the v2 protocol has no labels). ``max_rows`` bounds the rows of a body.
    """
    typed = copy.deepcopy(dict(document))
    paths: dict[str, Any] = typed.setdefault("paths", {})
    for path in list(paths):
        if path.startswith(_GENERIC) and ("{name}" in path) and "post" in paths[path]:
            del paths[path]["post"]
            if not paths[path]:
                del paths[path]
    for item in paths.values():  # FastAPI documents a 422; the server answers 400, 401 and 404 instead
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses.update(_errors(["400", "401", "404"]))
    ready = paths.get("/v2/health/ready", {}).get("get")
    if ready is not None:  # not ready (loading, or draining before a shutdown) answers 503 {"ready": false}
        ready["responses"]["503"] = {"description": "not ready: still loading, or draining before a shutdown",
                                     "content": {"application/json": {"schema": {
                                         "type": "object", "required": ["ready"],
                                         "properties": {"ready": {"type": "boolean"}}}}}}
    for model in models:
        paths[f"/v1/models/{model.prefix}:predict"] = _tf_serving(model, max_rows)
        if model.label is None:
            paths[f"/v2/models/{model.prefix}/infer"] = _open_inference(model, max_rows)
    return typed
