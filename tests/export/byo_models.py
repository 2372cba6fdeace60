"""Bring-your-own models for the export tests, imported as ``byo_models:Class``.

The test adds this folder to sys.path.
"""

from __future__ import annotations

import torch
from torch import nn


class GatedNet(nn.Module):
    """A user's own net: a conv, a sigmoid gate, a residual add and a linear head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 6):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.gate = nn.Conv2d(width, width, 1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, h, w)
        h = torch.relu(self.conv(x))
        h = h + h * torch.sigmoid(self.gate(h))
        return self.head(h.mean(dim=(2, 3)))


class EigenNet(nn.Module):
    """Uses torch.linalg.eigvalsh, which torch.export traces but ONNX has no translation for."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, 1, 8, 8) -> symmetric (batch, 8, 8) -> eigenvalues (batch, 8)
        m = x[:, 0] @ x[:, 0].transpose(-1, -2)
        return self.head(torch.linalg.eigvalsh(m))


class DataDependentNet(nn.Module):
    """Branches on a tensor's value: torch.export cannot trace it."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.head = nn.Linear(64 * in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.head(x.flatten(1))
        return -self.head(x.flatten(1))
