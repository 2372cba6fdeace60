"""Fixtures for the server tests: a tiny model repository and the anyio backend."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from torchship.testing import tiny_artifact

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> Path:
    """REPO/cnn/{1,2} (two seeds) and REPO/mlp/1 (16 features)."""
    root = tmp_path_factory.mktemp("repo")
    tiny_artifact("cnn", path=root / "cnn" / "1", seed=0)
    tiny_artifact("cnn", path=root / "cnn" / "2", seed=1)
    tiny_artifact("mlp", shape=(16,), path=root / "mlp" / "1", seed=2)
    return root
