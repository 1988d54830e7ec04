"""Stateless Serving Function (16) over HTTP: TensorFlow Serving REST and the Open Inference
Protocol v2 on the verified bundle runtime (needs the ``serve`` extra: FastAPI, uvicorn),
with several versions per model, labels, a traffic split by key, alias reloads and workers.

Importing this package imports neither FastAPI nor the bundle runtime: each name loads its
module on first use (``mlpatterns serve --help`` and its argument errors stay fast, and the
server's imports happen once the command runs). The sources of a server
(:mod:`.model_sources`) are light and imported here: ``model_sources`` is both a function
and a module's name, and the function is the package's.
"""

from mlpatterns._lazy import lazy_exports
from mlpatterns.serving.http.model_sources import ModelLoadError, ModelSource, model_sources

_EXPORTS = {  # name -> the module (relative to this package) that defines it
    "Limits": "_common",
    "RequestError": "_common",
    "ServedModel": "_common",
    "DEFAULT_RELOAD_INTERVAL": "app",
    "DEFAULT_VERSION": "app",
    "create_app": "app",
    "ACCESS_LOGGER": "operations",
    "TokenFileError": "operations",
    "token_from_file": "operations",
    "PredictionLogging": "prediction_logging",
    "NotServedError": "served_models",
    "ReloadEvent": "served_models",
    "ServedModels": "served_models",
    "load_models": "served_models",
    "SplitError": "traffic_split",
    "TrafficSplit": "traffic_split",
}

__all__ = ["ACCESS_LOGGER", "DEFAULT_RELOAD_INTERVAL", "DEFAULT_VERSION", "Limits", "ModelLoadError", "ModelSource",
           "NotServedError", "PredictionLogging", "ReloadEvent", "RequestError", "ServedModel", "ServedModels", "SplitError",
           "TokenFileError", "TrafficSplit", "create_app", "load_models", "model_sources", "token_from_file"]

__getattr__ = lazy_exports(__name__, _EXPORTS)
