"""torchship: carry a PyTorch model from training to a production endpoint."""

from typing import Any

__version__ = "0.1.0"

from torchship.artifact import Artifact, load  # noqa: E402
from torchship.errors import TorchshipError  # noqa: E402

__all__ = ["Artifact", "TorchshipError", "__version__", "from_model", "load"]


def __getattr__(name: str) -> Any:
    # from_model pulls in torch.export and the exporters: imported on first use, not with the package
    if name == "from_model":
        from torchship.importer import from_model

        return from_model
    raise AttributeError(f"module 'torchship' has no attribute {name!r}")
