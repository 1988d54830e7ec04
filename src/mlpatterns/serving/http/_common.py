"""What both wire protocols of the HTTP Stateless Serving Function (16) share.

The served models (:class:`ServedModel`: name, version, and the two ways a bundle
answers), the request limits, the error that becomes a 4xx ``{"error": ...}`` answer, the
checks of JSON values before they reach a model, and the conversion of predictions back
to JSON values.

A request of at most :data:`ONLINE_MAX_ROWS` rows is answered by the bundle's
:class:`~mlpatterns.serving.online.OnlinePredictor` straight from its JSON values (no
pandas: about 0.15 ms a row where a DataFrame costs 10 ms or more); a larger one, or a
bundle the online path cannot serve (a text encoder), by its
:class:`~mlpatterns.serving.stateless_serving_function.ServingFunction`, loaded (with
pandas) on first need. Both give the same JSON, errors included: the online path has the
batch path's features, scores and row problems (``tests/serving/http/test_http_online_path.py``).
Nothing here imports pandas until a request or a bundle needs it, so that a server can be
ready without paying for pandas and scikit-learn at start-up (``mlpatterns serve``'s cold
start: docs/patterns/stateless_serving_function.md, "Speed").
"""

from __future__ import annotations

import json
import math
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlpatterns.bundles.format import Bundle, BundleError
from mlpatterns.serving.http.request_coalescing import RowCoalescer
from mlpatterns.serving.online import InputError, OnlinePathUnsupported, OnlinePredictor, RowProblem
from mlpatterns.serving.serving_contract import json_value

if TYPE_CHECKING:
    import pandas as pd

    from mlpatterns.serving.stateless_serving_function import ServingFunction

__all__ = ["ONLINE_MAX_ROWS", "Limits", "RequestError", "ServedModel", "bad_rows_message", "conform_frame",
           "frame_of", "json_answer", "note_answer", "note_rows", "note_version", "predict_frame", "read_json",
           "scalar_problem"]

# Requests of up to this many rows take the online path. Measured on the flights bundles
# (benchmarks/bench_serving.py, a 2-core VM): the online path costs about 0.15 ms a row and
# pandas a fixed 10-15 ms, so the online path takes 0.1x the batch path's time at 64 rows,
# about 0.45x at 256 and catches up near 700; 256 keeps a margin of 2x.
ONLINE_MAX_ROWS = 256

_SCALARS = (str, int, float, bool, type(None))


class RequestError(Exception):
    """A request the server refuses: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class Limits:
    """The largest request accepted: bytes of body and rows (instances) per request."""

    max_body_bytes: int = 10 * 1024 * 1024
    max_rows: int = 10_000

    def check_rows(self, rows: int) -> None:
        if rows > self.max_rows:
            raise RequestError(f"the request holds {rows} rows; the limit is {self.max_rows}", 413)


class ServedModel:
    """One model the server answers for: its name, its version, and how it answers.

    ``serving`` is a verified :class:`~mlpatterns.bundles.format.Bundle`, or an object that
    answers every request itself: a loaded
    :class:`~mlpatterns.serving.stateless_serving_function.ServingFunction` (served as given,
    wrapped or patched as it may be) or another object with its serving methods (a table of
    precomputed predictions: ``predict_rows``, and ``conform`` and ``predict_conformed`` for
    large requests; without the last two, ``predict_rows`` answers every request). Of a bundle, ``online`` is its
    :class:`~mlpatterns.serving.online.OnlinePredictor` (None when the online path cannot
    serve it exactly), made here, so that its signature, transform and model are checked
    and loaded before the server is ready; its ServingFunction (the batch path, and pandas)
    is made on first use of :attr:`serving` (thread-safe), or here when the online path
    cannot serve the bundle. Requests of at most ``online_rows`` rows (default
    :data:`ONLINE_MAX_ROWS`; 0: never) take the online path; when the bundle's model scores
    each row on its own (a tree ensemble), the requests ready together share one model call
    (:attr:`coalescer`, :mod:`~mlpatterns.serving.http.request_coalescing`).
    """

    def __init__(self, name: str, version: str, serving: Any, *, online_rows: int = ONLINE_MAX_ROWS) -> None:
        self.name, self.version, self.online_rows = name, version, online_rows
        self._lock = threading.Lock()
        self._bundle: Bundle | None = serving if isinstance(serving, Bundle) else None
        self._serving = None if self._bundle is not None else serving
        self.online: OnlinePredictor | None = None
        if self._bundle is not None:
            try:
                self.online = OnlinePredictor(self._bundle)
            except OnlinePathUnsupported:
                self.online = None
        elif hasattr(serving, "predict_rows"):  # a table of precomputed predictions answers rows itself
            self.online = serving
            if not (hasattr(serving, "conform") and hasattr(serving, "predict_conformed")):
                self.online_rows = sys.maxsize  # no batch path: rows answer requests of every size
        if self._serving is None and self.online is None:
            self._serving = self._load_serving()
        self._key_kinds: dict[str, str] = {}
        independent = self.online is not None and getattr(self.online, "row_independent", False) is True
        self._coalescer = RowCoalescer(self.online.predict_rows) if independent else None
        answers = self._answers  # the signature's columns, read once: every request checks its fields
        self._inputs, self._keys = list(answers.input_columns), list(answers.key_columns)
        self._fields = [*self._inputs, *self._keys]
        self.registered: tuple[str, str] | None = None  # (name, version) in the registry it was loaded from
        self._identity: tuple[str, str] | None = None
        self._explainer: Any = None  # Explainable Predictions (29): built on the first request asking to explain
        self._explain_lock = threading.Lock()

    def _load_serving(self) -> ServingFunction:
        from mlpatterns.serving.stateless_serving_function import ServingFunction

        return ServingFunction(self._bundle)

    @property
    def serving(self) -> Any:
        """The batch path: the ServingFunction (loaded here on first use), or the object given."""
        if self._serving is None:
            with self._lock:
                if self._serving is None:
                    try:
                        self._serving = self._load_serving()
                    except (BundleError, OSError, ValueError) as error:  # verified at start: should not happen
                        raise RequestError(f"model '{self.name}' version {self.version}: its batch path could not "
                                           f"be loaded: {error}", 503) from error
        return self._serving

    @property
    def _answers(self) -> Any:
        """What reads the signature without loading the batch path."""
        return self._serving if self._serving is not None else self.online

    @property
    def signature(self) -> dict[str, Any]:
        return self._answers.signature

    @property
    def task(self) -> str:
        return self._answers.task

    @property
    def input_columns(self) -> list[str]:
        return self._inputs

    @property
    def key_columns(self) -> list[str]:
        return self._keys

    @property
    def fields(self) -> list[str]:
        """The columns a request carries: the inputs, then the keys (one list: do not change it)."""
        return self._fields

    @property
    def bundle(self) -> Any:
        return self._bundle if self._bundle is not None else self._answers.bundle

    def key_kind(self, key: str) -> str:
        """The kind of a key column in the training data (integer, float, ...), from the bundle's statistics."""
        kind = self._key_kinds.get(key)
        if kind is None:
            try:
                kind = str(self.bundle.json("statistics.json")["columns"][key]["kind"])
            except (KeyError, TypeError, ValueError, AttributeError, OSError):
                kind = "unknown"
            self._key_kinds[key] = kind
        return kind

    @property
    def identity(self) -> tuple[str, str]:
        """The model and version a prediction log records (Continued Model Evaluation, 18): the registered
        name and version when loaded from a registry (:attr:`registered`), else the bundle's name and the
        first 12 hex digits of its manifest digest (a table of precomputed predictions: its bundle's), else
        the served name and version."""
        if self.registered is not None:
            return self.registered
        if self._identity is None:
            self._identity = _bundle_identity(self)
        return self._identity

    @property
    def serving_loaded(self) -> bool:
        """Whether the batch path (:attr:`serving`) has been loaded; reading :attr:`serving` loads it."""
        return self._serving is not None

    @property
    def coalescer(self) -> RowCoalescer | None:
        """What predicts the online requests ready together in one call (None: each request alone)."""
        return self._coalescer

    def answers_online(self, rows: int) -> bool:
        """Whether a request of ``rows`` rows takes the online path."""
        return self.online is not None and rows <= self.online_rows

    def predict_online(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """The online path: keyed predictions of rows of JSON values, as JSON columns
        (the key columns, then the outputs), or a 400 naming each bad row and field."""
        assert self.online is not None
        try:
            return self._json_columns(self.online.predict_rows(rows))
        except InputError as error:
            raise RequestError(str(error)) from error

    async def predict_online_together(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """:meth:`predict_online`, in one model call with the other requests ready at the same time
        when the model's rows are scored independently (:class:`RowCoalescer`); the same answer."""
        if self._coalescer is None:
            return self.predict_online(rows)
        try:
            return self._json_columns(await self._coalescer.predict(rows))
        except InputError as error:
            raise RequestError(str(error)) from error

    def _json_columns(self, answer: tuple[list[dict[str, Any]], list[RowProblem]]) -> dict[str, list[Any]]:
        assert self.online is not None
        outputs, problems = answer
        if problems:
            raise RequestError(bad_rows_message(problems))
        names = dict.fromkeys([*self.online.key_columns, *self.online.output_columns])
        return {name: [_json_value(output[name]) for output in outputs] for name in names}

    def explain(self, frame: pd.DataFrame, explainer_for: Callable[[Any], Any]) -> dict[str, list[Any]]:
        """Explainable Predictions (29): each row's attributions to the raw input columns, as JSON columns.

        ``explainer_for(serving)`` (the app's ``explainer``, e.g.
        :func:`mlpatterns.responsible.explainable_predictions.explained_predictions.explainer_for_serving`)
        makes, once per served version (on the first request that asks; thread-safe), the
        function from the rows to their explanation columns; it raises ``ValueError`` for a
        model it cannot explain (a multiclass task) and ``InputError`` for a bad row: each is a
        400 that says why. Any other failure (an explanation that does not add up to the served
        output) is the server's, a 500. Precomputed predictions have no model to explain.
        """
        if self._explainer is None:
            from mlpatterns.serving.stateless_serving_function import ServingFunction

            with self._explain_lock:  # not self._lock: self.serving may take that one
                if self._explainer is None:
                    serving = self.serving
                    if not isinstance(serving, ServingFunction):
                        raise RequestError(f"model '{self.name}' version {self.version} serves precomputed "
                                           "predictions: it has no model to explain")
                    try:
                        self._explainer = explainer_for(serving)
                    except ValueError as error:
                        raise RequestError(f"model '{self.name}' version {self.version} cannot explain: "
                                           f"{error}") from error
        try:
            return self._explainer(frame)
        except InputError as error:  # a bad row: the client's to fix (an explanation that does not add up is the
            raise RequestError(str(error)) from error  # server's: it stays an error, a 500)

    def __repr__(self) -> str:
        path = "online and batch" if self.online is not None else "batch"
        return f"ServedModel({self.name!r}, version {self.version!r}, {path})"


def _bundle_identity(model: ServedModel) -> tuple[str, str]:
    source = getattr(model._answers, "source", None)  # a table of precomputed predictions: the bundle that made it
    if isinstance(source, Mapping) and source.get("bundle") and source.get("manifest_sha256"):
        return str(source["bundle"]), str(source["manifest_sha256"])[:12]
    manifest = getattr(model.bundle, "manifest", None)
    if isinstance(manifest, Mapping) and manifest.get("name") and manifest.get("manifest_sha256"):
        return str(manifest["name"]), str(manifest["manifest_sha256"])[:12]
    return model.name, model.version


async def read_json(request: Any, limits: Limits) -> bytes:
    """The raw body (tritonclient sends no Content-Type), refused with 413 beyond the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise RequestError(f"the body holds {declared} bytes; the limit is {limits.max_body_bytes}", 413)
    body = await request.body()
    if len(body) > limits.max_body_bytes:
        raise RequestError(f"the body holds {len(body)} bytes; the limit is {limits.max_body_bytes}", 413)
    return body


def note_rows(request: Any, rows: int) -> None:
    """Record how many rows a request holds, for the access log (``request.state.rows``)."""
    request.state.rows = rows


def note_version(request: Any, model: str, version: str = "", rows_by_version: dict[str, int] | None = None) -> None:
    """Record the model and version a request was answered by, for the metrics and the access log.

    ``version`` is "" until the version is known; a request split over several versions
    records them joined by ",", and ``rows_by_version`` how many rows each answered.
    """
    request.state.model, request.state.version = model, version
    if rows_by_version is not None:
        request.state.rows_by_version = rows_by_version


def note_answer(request: Any, name: str, version: str, rows: int, used: list[str] | None) -> None:
    """Record the version(s) that answered ``rows`` rows: ``version``, or (a split) each row's in ``used``."""
    if used is None:
        note_version(request, name, version, {version: rows})
        return
    counts = Counter(used)
    note_version(request, name, ",".join(sorted(counts, key=int)), dict(counts))


def json_answer(document: Any) -> Any:
    """A 200 answer of ``document``, whose values are JSON values already, encoded as FastAPI's
    JSONResponse encodes it (compact, UTF-8, no NaN) without FastAPI's encoder walking it first."""
    from starlette.responses import JSONResponse

    return JSONResponse(document)


def parse_json(body: bytes) -> Any:
    """The JSON document of a body, or a 400 that says where it is malformed."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(f"the body is not valid JSON: {error}") from error


def scalar_problem(value: Any) -> str | None:
    """Why a JSON value cannot be one cell of a row (None: it can)."""
    if not isinstance(value, _SCALARS):
        return f"expected a single value, got {type(value).__name__} {json.dumps(value)[:60]}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    return None


def bad_rows_message(problems: list[RowProblem]) -> str:
    """The 400 message of bad rows: each row and field, the first ten of them."""
    shown = "; ".join(f"row {p.row}, field '{p.column}': {p.problem}" for p in problems[:10])
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return f"{len({p.row for p in problems})} bad row(s): {shown}{more}"


def frame_of(fields: Sequence[str], columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """A frame of JSON values for the batch path: one object column per field, values as given."""
    import pandas as pd

    return pd.DataFrame({f: pd.Series(list(columns[f]), dtype=object) for f in dict.fromkeys(fields)})


def conform_frame(model: ServedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows converted to the model's input types, or a 400 naming each bad row and field."""
    try:
        conformed, problems = model.serving.conform(frame)
    except InputError as error:
        raise RequestError(str(error)) from error
    if problems:
        raise RequestError(bad_rows_message(problems))
    return conformed


def predict_frame(model: ServedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Keyed predictions for every row, or a 400 naming each bad row and field."""
    return model.serving.predict_conformed(frame, conform_frame(model, frame))


def _json_value(value: Any) -> Any:
    """A prediction of the online path as a JSON value (a non-finite float becomes null, as in :func:`json_value`)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def explain_flag(body: Mapping[str, Any], where: str = "explain") -> bool:
    """The request's optional ``explain`` (default false), or a 400 unless it is true or false."""
    value = body.get("explain", False)
    if not isinstance(value, bool):
        raise RequestError(f"'{where}' must be true or false, got {json.dumps(value)[:60]}")
    return value


def app_explainer(request: Any) -> Callable[[Any], Any]:
    """The app's ``explainer`` (``create_app(explainer=...)``), or a 400 saying this server does not explain."""
    explainer = getattr(request.app.state, "explainer", None)
    if explainer is None:
        raise RequestError("this server does not answer 'explain': it was started without an explainer "
                           "(create_app(explainer=...))")
    return explainer


def column_values(frame: pd.DataFrame, column: str) -> list[Any]:
    """One column of a frame as a list of JSON values."""
    return [json_value(v) for v in frame[column].tolist()]
