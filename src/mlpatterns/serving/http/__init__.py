"""Stateless Serving Function (16) over HTTP: TensorFlow Serving REST and the Open Inference
Protocol v2 on the verified bundle runtime (needs the ``serve`` extra: FastAPI, uvicorn),
with several versions per model, labels, a traffic split by key, alias reloads and workers.
"""

from mlpatterns.serving.http._common import Limits, RequestError, ServedModel
from mlpatterns.serving.http.app import (
           DEFAULT_RELOAD_INTERVAL,
           DEFAULT_VERSION,
           ModelLoadError,
           create_app,
           load_models,
)
from mlpatterns.serving.http.operations import ACCESS_LOGGER, TokenFileError, token_from_file
from mlpatterns.serving.http.served_models import (
           ModelSource,
           NotServedError,
           ReloadEvent,
           ServedModels,
           model_sources,
)
from mlpatterns.serving.http.traffic_split import SplitError, TrafficSplit

__all__ = ["ACCESS_LOGGER", "DEFAULT_RELOAD_INTERVAL", "DEFAULT_VERSION", "Limits", "ModelLoadError", "ModelSource",
           "NotServedError", "ReloadEvent", "RequestError", "ServedModel", "ServedModels", "SplitError",
           "TokenFileError", "TrafficSplit", "create_app", "load_models", "model_sources", "token_from_file"]
