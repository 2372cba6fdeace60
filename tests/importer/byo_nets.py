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


def regression_artifact(out):
    """TwoHeads (seeded) through from_model as a regression with outputs mean and scale, saved at ``out``."""
    import torch

    from torchship.importer import from_model

    torch.manual_seed(0)
    net = TwoHeads()
    art = from_model(
        net, (torch.randn(4, 6),), name="reg", task="regression", output_names=["mean", "scale"], out=out
    )
    return net, art


class Mixed(nn.Module):
    """Regression over two float inputs and one of token ids (drift watches the floats only)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.ids = nn.Linear(4, 1), nn.Linear(3, 1), nn.Embedding(10, 1)

    def forward(self, a, b, ids):
        return (self.a(a) + self.b(b) + self.ids(ids)).squeeze(-1)
