"""Export fixtures: one export per model per session, shared by the tests that read it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from torchship.artifact import Artifact
from torchship.testing import tiny_artifact

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # byo_models and triton_checks (--import-mode=importlib adds nothing)
    sys.path.insert(0, str(HERE))
# 1 + 7 + 24 samples: the parity loop feeds batches of 1, 7 and 32, so every size path runs
SAMPLES = 32


@pytest.fixture(autouse=True)
def _few_threads():
    # overrides the root fixture: one intra-op thread, since OpenMP's spinning threads stall
    # badly when other engineers' jobs share this 2-core machine
    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _one_onnx_registry():
    """Build torch.onnx's op registry once per session instead of once per export (~10 s each)."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        yield
        return
    descriptor = _registration.ONNXRegistry.__dict__["from_torchlib"]
    original = _registration.ONNXRegistry.from_torchlib
    cache: dict = {}

    def cached(*args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = original(*args, **kwargs)
        return cache[key]

    _registration.ONNXRegistry.from_torchlib = staticmethod(cached)
    yield
    _registration.ONNXRegistry.from_torchlib = descriptor


def byo_artifact(cls: str, path: Path, **kwargs) -> Artifact:
    """A saved artifact of a bring-your-own model from ``byo_models.py``."""
    from torchship.models import build_model

    torch.manual_seed(0)
    architecture = {"import": f"byo_models:{cls}", "kwargs": {"in_channels": 1, "num_classes": 10, **kwargs}}
    model = build_model(architecture, allow_import=[f"byo_models:{cls}"])
    art = Artifact.create(
        name=f"byo-{cls.lower()}",
        model=model,
        architecture=architecture,
        input={"shape": [1, 8, 8], "mean": [0.5], "std": [0.25]},
        labels=[str(i) for i in range(10)],
    )
    return art.save(path)


@pytest.fixture(scope="session")
def make_byo():
    """``make_byo(cls, path)``: a saved artifact of a model from ``byo_models.py``."""
    return byo_artifact


TINY = {
    "mlp": lambda path: tiny_artifact("mlp", path=path, hidden=[32]),
    "cnn": lambda path: tiny_artifact("cnn", path=path, channels=[4, 8], hidden=16),
    "resnet": lambda path: tiny_artifact("resnet", path=path, depth=8, width=4),
    "byo": lambda path: byo_artifact("GatedNet", path),
}


# What the default suite exports per model; the resnet's other formats run under -m slow
# (torch.export's decompositions of even a depth-8 resnet take tens of seconds on 2 cores).
FORMATS = {
    "mlp": ["onnx", "torchscript", "exported", "triton"],
    "cnn": ["onnx", "torchscript", "exported"],
    "resnet": ["onnx"],
    "byo": ["onnx", "torchscript", "exported"],
}


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(kind)``: the tiny artifact exported to its ``FORMATS`` (once per session)."""
    from torchship.export import export

    done: dict[str, Artifact] = {}

    def get(kind: str) -> Artifact:
        if kind not in done:
            art = TINY[kind](tmp_path_factory.mktemp(kind) / "artifact")
            done[kind] = export(
                art,
                FORMATS[kind],
                max_samples=SAMPLES,
                allow_import=["byo_models:GatedNet"],
            )
        return done[kind]

    return get
