"""Phase 2 of Two-Phase Predictions (19): the large model on the server, called over HTTP.

:class:`HttpPhaseTwo` calls a bundle served by ``mlpatterns serve``
(:func:`mlpatterns.serving.http.create_app`) through TensorFlow Serving's REST API
(``protocol="rest"``, rows as ``instances``) or the Open Inference Protocol v2
(``protocol="v2"``, one typed tensor per column). It reads the model's signature once
(its inputs and key columns), sends every row of a call in one request and returns the
predictions as a DataFrame, key columns first, in the order sent: the same shape as
:meth:`mlpatterns.serving.ServingFunction.predict`, which serves as phase 2 offline.
httpx is imported when a client is made.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlpatterns.serving.serving_contract import json_value

__all__ = ["HttpPhaseTwo", "PhaseTwoError"]


class PhaseTwoError(RuntimeError):
    """Phase 2 refused a request or could not be reached; the message carries the server's reason."""


def _key_datatype(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "BOOL"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "INT64"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "FP64"
    return "BYTES"


class HttpPhaseTwo:
    """A client of one model served by ``mlpatterns serve``, as phase 2.

    Parameters
    ----------
    url : str
        The server's base URL, e.g. ``"http://127.0.0.1:8501"``.
    model : str
        The served model's name.
    protocol : {"rest", "v2"}
        TensorFlow Serving REST (``/v1/models/NAME:predict``) or the Open Inference
        Protocol v2 (``/v2/models/NAME/infer``).
    timeout : float
        Seconds per request (of the client made here; a given client keeps its own).
    headers : dict, optional
        Extra headers, e.g. ``{"Authorization": "Bearer ..."}``.
    client : httpx.Client, optional
        The client to send the requests with (e.g. ``fastapi.testclient.TestClient(app)``,
        with ``url="http://testserver"``); by default one of its own, closed by :meth:`close`.

    Attributes
    ----------
    requests : int
        The prediction requests sent so far.
    """

    def __init__(self, url: str, model: str, *, protocol: str = "rest", timeout: float = 10.0,
                 headers: dict[str, str] | None = None, client: Any = None) -> None:
        import httpx

        if protocol not in ("rest", "v2"):
            raise ValueError(f"protocol must be 'rest' or 'v2', got {protocol!r}")
        self.url, self.model, self.protocol = url.rstrip("/"), model, protocol
        self.requests = 0
        self._own = client is None
        self._client = httpx.Client(timeout=timeout, headers=headers) if client is None else client
        self._options = {"headers": headers} if client is not None and headers else {}
        self._signature: tuple[list[str], list[str], dict[str, str]] | None = None

    def __enter__(self) -> HttpPhaseTwo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client this object made (a client given to it stays open)."""
        if self._own:
            self._client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._client.request(method, f"{self.url}{path}", **self._options, **kwargs)
        except httpx.HTTPError as error:
            raise PhaseTwoError(f"phase 2 ({self.url}{path}) cannot be reached: {error}") from error
        if response.status_code != 200:
            try:
                reason = response.json().get("error", response.text)
            except ValueError:
                reason = response.text
            raise PhaseTwoError(f"phase 2 model '{self.model}' answered {response.status_code}: {reason}")
        return response.json()

    def _read_signature(self) -> tuple[list[str], list[str], dict[str, str]]:
        """Inputs, keys and (v2) the input datatypes, read from the server once."""
        if self._signature is None:
            if self.protocol == "rest":
                found = self._call("GET", f"/v1/models/{self.model}/metadata")
                signature = found["metadata"]["signature_def"]["signature_def"]["serving_default"]
                self._signature = ([i["name"] for i in signature["inputs"]], list(signature.get("keys", [])), {})
            else:
                found = self._call("GET", f"/v2/models/{self.model}")
                keys = [o["name"] for o in found["outputs"] if o["name"] in {i["name"] for i in found["inputs"]}]
                inputs = [i for i in found["inputs"] if i["name"] not in keys]
                self._signature = ([i["name"] for i in inputs], keys, {i["name"]: i["datatype"] for i in inputs})
        return self._signature

    @property
    def input_columns(self) -> list[str]:
        return list(self._read_signature()[0])

    @property
    def key_columns(self) -> list[str]:
        return list(self._read_signature()[1])

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predictions for every row of ``frame`` in one request (none for an empty frame)."""
        inputs, keys, datatypes = self._read_signature()
        fields = [*inputs, *keys]
        missing = [f for f in fields if f not in frame.columns]
        if missing:
            raise ValueError(f"missing column(s) {missing}; phase 2 ('{self.model}') takes inputs {inputs} "
                             f"and keys {keys}")
        if not len(frame):
            return pd.DataFrame(columns=keys)
        columns = {f: [json_value(v) for v in frame[f].tolist()] for f in fields}
        self.requests += 1
        if self.protocol == "rest":
            body = {"instances": [dict(zip(fields, row, strict=True))
                                  for row in zip(*columns.values(), strict=True)]}
            answer = self._call("POST", f"/v1/models/{self.model}:predict", json=body)
            return pd.DataFrame(answer["predictions"])
        tensors = []
        for name in fields:
            datatype = datatypes.get(name) or _key_datatype(columns[name])
            values = columns[name]
            if datatype == "BYTES":
                values = [v if v is None or isinstance(v, str) else str(v) for v in values]
            tensors.append({"name": name, "datatype": datatype, "shape": [len(frame)], "data": values})
        answer = self._call("POST", f"/v2/models/{self.model}/infer", json={"inputs": tensors})
        result = pd.DataFrame({o["name"]: o["data"] for o in answer["outputs"]})
        return result[[*keys, *[c for c in result.columns if c not in keys]]]
