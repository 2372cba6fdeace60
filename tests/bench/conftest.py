"""Fixtures for bench tests: fast timing settings and runtimes that fail on purpose."""

import numpy as np
import pytest

from torchship.bench import TimingConfig
from torchship.runtime import runtimes
from torchship.runtime.base import RuntimeError_

# a few calls per batch size: the tests check fields and behaviour, never the figures
FAST = TimingConfig(warmup=1, min_iterations=5, min_time_s=0.0, max_time_s=2.0)


@pytest.fixture
def fast():
    return FAST


class _SmallOnly:
    """Runs batches of at most 4 rows, like an export with a bounded batch dimension."""

    name = "small-only"

    def __init__(self, artifact, options):
        from torchship.runtime.eager import EagerPredictor

        self.inner = EagerPredictor(artifact, options)

    def predict(self, batch):
        if len(batch) > 4:
            raise ValueError(f"batch {len(batch)} exceeds the compiled maximum of 4\nsecond line")
        return self.inner.predict(batch)

    def describe(self):
        return {"runtime": self.name, "threads": 1}

    def close(self):
        self.inner.close()


def _cannot_load(artifact, options):
    raise RuntimeError_("artifact has no file 'model.fake'", fix="export it first (torchship export)")


@pytest.fixture
def fake_runtimes(monkeypatch):
    """Register 'cannot-load' and 'small-only' for one test (the registry is restored after)."""
    monkeypatch.setitem(runtimes._items, "cannot-load", _cannot_load)
    monkeypatch.setitem(runtimes._items, "small-only", _SmallOnly)
    return ["cannot-load", "small-only"]


@pytest.fixture
def labelled(tiny_cnn_artifact):
    """16 inputs labelled with the model's own predictions (accuracy 1.0 by construction)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, *tiny_cnn_artifact.manifest.input.shape), dtype=np.float32)
    import torch

    with torch.inference_mode():
        y = tiny_cnn_artifact.build_model()(torch.from_numpy(x)).argmax(1).numpy()
    return x, y
