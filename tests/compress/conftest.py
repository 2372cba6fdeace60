"""Small seeded parents for the compression tests: untrained zoo models on a digits slice."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchship.artifact import sha256_file
from torchship.testing import tiny_artifact

DIGITS = {"name": "digits", "limit": 200}
DIGITS3 = {"name": "digits", "limit": 200, "channels": 3}
QUICK = {"epochs": 1, "batch_size": 64}


def checksums(path: Path) -> dict[str, str]:
    """sha256 of every file under an artifact directory (the parent must never change)."""
    return {str(p.relative_to(path)): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def resnet_parent(tmp_path_factory):
    return tiny_artifact(
        "resnet", shape=(3, 8, 8), depth=8, width=8, path=tmp_path_factory.mktemp("resnet") / "art"
    )


@pytest.fixture(scope="module")
def bn_cnn_parent(tmp_path_factory):
    return tiny_artifact(
        "cnn",
        shape=(1, 8, 8),
        channels=[8, 16],
        hidden=32,
        batch_norm=True,
        path=tmp_path_factory.mktemp("cnn") / "art",
    )


@pytest.fixture(scope="module")
def mlp_parent(tmp_path_factory):
    return tiny_artifact("mlp", shape=(1, 8, 8), hidden=[32, 16], path=tmp_path_factory.mktemp("mlp") / "art")


@pytest.fixture(scope="session")
def trained_cnn(tmp_path_factory):
    """A small cnn trained on digits for a few epochs (~97 % val accuracy): something int8 can lose."""
    from rich.console import Console

    from torchship.config import validate_config
    from torchship.train import TrainConfig, train

    out = tmp_path_factory.mktemp("trained")
    cfg = validate_config(
        TrainConfig,
        {
            "name": "digits-small",
            "out": str(out),
            "data": {"name": "digits"},
            "model": {"name": "cnn", "kwargs": {"channels": [8, 16], "hidden": 32}},
            "optim": {"name": "adamw", "lr": 1e-2},
            "train": {"epochs": 4, "batch_size": 64, "progress": False},
        },
    )
    return train(cfg, console=Console(quiet=True))
