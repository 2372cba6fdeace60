"""Serving: an Open Inference Protocol v2 HTTP server with dynamic batching.

app = create_app("runs/digits-cnn/artifact")      # an ASGI app (Starlette)
serve("models/", port=8000)                        # or run it under uvicorn, draining on SIGTERM
"""

from torchship.serve.app import create_app
from torchship.serve.batcher import BatchPolicy, decide
from torchship.serve.config import ModelSettings, ServeConfig, load_serve_config
from torchship.serve.security import Security
from torchship.serve.server import serve

__all__ = [
    "BatchPolicy",
    "ModelSettings",
    "Security",
    "ServeConfig",
    "create_app",
    "decide",
    "load_serve_config",
    "serve",
]
