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


class TokenPair(nn.Module):
    """Two inputs (ids, mask: (batch, seq) int64) to two outputs: logits (batch, 3) and pooled (batch, 8)."""

    def __init__(self, vocab: int = 50):
        super().__init__()
        self.emb = nn.Embedding(vocab, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, ids, mask):
        # ids, mask: (batch, seq)
        pooled = (self.emb(ids) * mask.unsqueeze(-1).float()).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.head(pooled), pooled


def token_pair_artifact(out):
    """TokenPair (seeded) through from_model, rebuildable from ``byo_nets:TokenPair``, saved at ``out``."""
    import torch

    from torchship.importer import from_model

    torch.manual_seed(0)
    ids = torch.randint(0, 50, (2, 7))
    return from_model(
        TokenPair(),
        (ids, torch.ones_like(ids)),
        name="pair",
        labels=["a", "b", "c"],
        input_names=["ids", "mask"],
        output_names=["logits", "pooled"],
        dynamic_dims={"ids": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}},
        ranges={"ids": [0, 50]},
        architecture={"import": "byo_nets:TokenPair"},
        out=out,
    )


class Mixed(nn.Module):
    """Regression over two float inputs and one of token ids (drift watches the floats only)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.ids = nn.Linear(4, 1), nn.Linear(3, 1), nn.Embedding(10, 1)

    def forward(self, a, b, ids):
        return (self.a(a) + self.b(b) + self.ids(ids)).squeeze(-1)
