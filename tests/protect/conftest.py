"""Fixtures for signed and encrypted artifacts: key pairs, an exported tiny artifact, an AES key."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from torchship.testing import tiny_artifact

SERVE_TESTS = Path(__file__).parents[1] / "serve"
if str(SERVE_TESTS) not in sys.path:
    sys.path.insert(0, str(SERVE_TESTS))  # serve_helpers: the in-process app pattern


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> dict[str, Path]:
    """Two EC key pairs: private/public (the signer) and other_public (someone else)."""
    from torchship.artifact.signing import keygen

    root = tmp_path_factory.mktemp("keys")
    private, public, _ = keygen(root / "signer")
    _, other_public, _ = keygen(root / "other")
    return {"private": private, "public": public, "other_public": other_public}


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> Path:
    """A tiny cnn artifact with TorchScript and ONNX exports (never modified: copy it)."""
    from torchship.export import export

    path = tmp_path_factory.mktemp("exported") / "artifact"
    export(tiny_artifact("cnn", path=path, seed=3), ["torchscript", "onnx"])
    return path


@pytest.fixture
def artifact(exported, tmp_path) -> Path:
    """A fresh copy of the exported artifact, free to sign, tamper with or encrypt."""
    return Path(shutil.copytree(exported, tmp_path / "art"))


@pytest.fixture
def aes_key_file(tmp_path) -> Path:
    from torchship.artifact.encryption import generate_key

    path = tmp_path / "artifact.key"
    path.write_text(generate_key().hex() + "\n")
    return path
