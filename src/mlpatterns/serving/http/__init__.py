"""Stateless Serving Function (16) over HTTP: TensorFlow Serving REST and the Open Inference
Protocol v2 on the verified bundle runtime (needs the ``serve`` extra: FastAPI, uvicorn).
"""

from mlpatterns.serving.http._common import Limits, RequestError, ServedModel
from mlpatterns.serving.http.app import DEFAULT_VERSION, ModelLoadError, create_app, load_models
from mlpatterns.serving.http.operations import ACCESS_LOGGER, TokenFileError, token_from_file

__all__ = ["ACCESS_LOGGER", "DEFAULT_VERSION", "Limits", "ModelLoadError", "RequestError", "ServedModel", "TokenFileError",
           "create_app", "load_models", "token_from_file"]
