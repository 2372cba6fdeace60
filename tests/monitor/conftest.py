"""Fixtures for the monitoring tests: a small cnn trained on digits, its repository and shifted data.

The server helpers of tests/serve (``real_server``, ``in_process``) are reused as they are;
data helpers are in ``monitor_helpers``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
for folder in (HERE, HERE.parent / "serve"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def digits_artifact(tmp_path_factory):
    """A small cnn trained 6 epochs on digits (about 3 s): its manifest carries the reference."""
    from rich.console import Console

    from torchship.config import validate_config
    from torchship.quickstart import QUICKSTART_CONFIG
    from torchship.train import TrainConfig, train

    out = tmp_path_factory.mktemp("monitor-digits")
    cfg = validate_config(
        TrainConfig,
        {
            **QUICKSTART_CONFIG,
            "model": {"name": "cnn", "kwargs": {"channels": [8, 16], "hidden": 32}},
            "train": {"epochs": 6, "batch_size": 64},
            "out": str(out),
        },
    )
    return train(cfg, console=Console(quiet=True))


@pytest.fixture(scope="session")
def digits_repo(tmp_path_factory, digits_artifact) -> Path:
    """REPO/digits/1: the trained artifact as a one-model repository."""
    root = tmp_path_factory.mktemp("monitor-repo")
    shutil.copytree(digits_artifact.path, root / "digits" / "1")
    return root


@pytest.fixture(scope="session")
def digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as (n, 8, 8) floats in [0, 1] and their labels."""
    from torchship.data.builtin import _bundled_digits

    rows = _bundled_digits()
    return (rows[:, :64] / 16).reshape(-1, 8, 8).astype(np.float32), rows[:, 64].astype(np.int64)
