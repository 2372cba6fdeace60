"""Bring-your-own models for the import tests (imported by path, as users name theirs)."""

from __future__ import annotations

from torch import nn


class TwoHeads(nn.Module):
    """Regression with two outputs: a (batch, 2) mean and a (batch,) scale."""

    def __init__(self, features: int = 6):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, 16), nn.ReLU())
        self.mean = nn.Linear(16, 2)
        self.scale = nn.Linear(16, 1)

    def forward(self, x):
        h = self.body(x)
        return self.mean(h), self.scale(h).squeeze(-1).exp()


def two_heads(features: int = 6) -> nn.Module:
    """A factory, as --class accepts."""
    return TwoHeads(features)
