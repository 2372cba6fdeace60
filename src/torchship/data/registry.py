"""The dataset registry: name -> reader returning raw arrays in the dataset's own units."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from torchship.data.config import DataConfig
from torchship.errors import DataError
from torchship.registry import Registry


@dataclass
class RawData:
    """What a reader returns, before any resize, split or normalization.

    ``x`` is (n, c, h, w) for images or (n, features) for tables, in the file's own units
    and dtype (uint8 stays uint8 until :func:`~torchship.data.load_data` converts it, so a
    50,000-image set is not copied as float twice). ``x * scale`` is in [0, 1] for images.
    ``test_x``/``test_y`` hold an official test set when the format ships one (MNIST t10k,
    CIFAR ``test_batch``). ``unitless`` marks files of plain numbers (npz, csv) whose units
    only the user knows: training uses ``scale`` (a guess), and when the data is fed to an
    artifact its manifest's ``input.scale`` applies instead (docs/data.md, "Units").
    """

    x: np.ndarray
    y: np.ndarray
    labels: list[str]
    scale: float
    layout: Literal["image", "features"] = "image"
    test_x: np.ndarray | None = None
    test_y: np.ndarray | None = None
    source: dict[str, Any] = field(default_factory=dict)
    unitless: bool = False


Reader = Callable[[DataConfig], RawData]
datasets: Registry[Reader] = Registry("dataset", error=DataError)
