"""Training: config-driven loop with checkpoints, resume, metrics, early stopping and DDP."""

from torchship.train.config import TrainConfig
from torchship.train.engine import Callback, train

__all__ = ["Callback", "TrainConfig", "train"]
