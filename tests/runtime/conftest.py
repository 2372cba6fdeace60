"""Runtime fixtures: one tiny mlp exported to every quick format, once per session."""

from __future__ import annotations

import pytest
import torch

from torchship.testing import tiny_artifact


@pytest.fixture(autouse=True)
def _few_threads():
    # overrides the root fixture: one intra-op thread, since OpenMP's spinning threads stall
    # badly when other engineers' jobs share this 2-core machine
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def exported_mlp(tmp_path_factory):
    from torchship.export import export

    art = tiny_artifact("mlp", path=tmp_path_factory.mktemp("mlp") / "artifact", hidden=[32])
    return export(art, ["onnx", "torchscript", "exported"], max_samples=16)
