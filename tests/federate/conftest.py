"""Small federated runs on digits: a tiny mlp, one local epoch, a few clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("flwr")

from torchship.federate import FederatedRun  # noqa: E402


def make_run(**federate: Any) -> FederatedRun:
    return FederatedRun.from_dict(
        {
            "model": {"name": "mlp", "kwargs": {"hidden": [32]}},
            "data": {"name": "digits", "val_fraction": 0.2},
            "optim": {"name": "adam", "lr": 0.005},
            "schedule": {"name": "constant"},
            "train": {"batch_size": 32, "threads": 1},
            "federate": {"clients": 3, "rounds": 2, **federate},
        }
    )


def write_client_files(folder: Path, clients: int) -> list[Path]:
    """Raw digits (0..16 stored as uint8) dealt round-robin into one .npz per client."""
    from torchship.data import DataConfig
    from torchship.data.builtin import read_digits

    raw = read_digits(DataConfig(name="digits"))
    files = []
    for i in range(clients):
        path = folder / f"client-{i}.npz"
        np.savez(path, x=raw.x[i::clients, 0].astype(np.uint8), y=np.asarray(raw.labels)[raw.y[i::clients]])
        files.append(path)
    return files


@pytest.fixture
def client_files(tmp_path: Path) -> list[Path]:
    return write_client_files(tmp_path, 2)
