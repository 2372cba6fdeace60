"""torchship: carry a PyTorch model from training to a production endpoint."""

__version__ = "0.1.0"

from torchship.artifact import Artifact, load  # noqa: E402
from torchship.errors import TorchshipError  # noqa: E402

__all__ = ["Artifact", "TorchshipError", "__version__", "load"]
