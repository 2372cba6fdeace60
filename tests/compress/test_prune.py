import subprocess
import sys
import textwrap

import pytest
import torch

from torchship.artifact import Artifact
from torchship.compress import CompressError, PruneConfig, prune
from torchship.compress.base import parse_config
from torchship.errors import ConfigError

from .conftest import DIGITS, DIGITS3, QUICK, checksums


@pytest.fixture(scope="module")
def pruned_resnet(resnet_parent, tmp_path_factory):
    before = checksums(resnet_parent.path)
    cfg = PruneConfig(ratio=0.5, steps=2, data=DIGITS3, finetune=QUICK)
    child = prune(resnet_parent, cfg, out=tmp_path_factory.mktemp("pruned") / "art")
    return before, child


def test_structured_pruning_shrinks_a_resnet(resnet_parent, pruned_resnet):
    before, child = pruned_resnet
    report = child.manifest.lineage.params["report"]
    assert report["pruned"]["params"] < 0.5 * report["parent"]["params"]
    assert report["pruned"]["macs"] < 0.5 * report["parent"]["macs"]
    assert child.manifest.lineage.parent == resnet_parent.digest
    assert child.manifest.lineage.op == "prune"
    assert child.manifest.lineage.params["ratio"] == 0.5
    assert 0.0 <= child.manifest.metrics["val"]["accuracy"] <= 1.0
    assert len(child.manifest.curves) == 1  # the final fine-tuning epoch
    assert checksums(resnet_parent.path) == before  # the parent is never modified
    shapes = child.manifest.architecture.kwargs["pruned_shapes"]
    assert shapes["stem.0.weight"][0] < 8
    assert "head.weight" in shapes  # head keeps its outputs, loses inputs
    assert shapes["head.weight"][0] == 10


def test_pruned_artifact_reloads_without_pruning_code(pruned_resnet):
    _, child = pruned_resnet
    expected = child.build_model()(torch.ones(1, 3, 8, 8)).flatten().tolist()
    script = textwrap.dedent(f"""
        import sys, torch
        from torchship.artifact import Artifact
        model = Artifact.load({str(child.path)!r}).build_model()
        print(model(torch.ones(1, 3, 8, 8)).flatten().tolist())
        print("torch_pruning" in sys.modules, "torchship.compress" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    logits, imported = done.stdout.strip().splitlines()
    assert torch.allclose(torch.tensor(eval(logits)), torch.tensor(expected), atol=1e-6)
    assert imported == "False False"


def test_unstructured_global_pruning_reaches_the_target(mlp_parent, tmp_path):
    cfg = PruneConfig(kind="unstructured", scope="global", ratio=0.6, steps=2, data=DIGITS)
    child = prune(mlp_parent, cfg, out=tmp_path / "sparse")
    report = child.manifest.lineage.params["report"]
    model = Artifact.load(child.path).build_model()
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not model.head]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.6, abs=0.01)
    assert report["sparsity"]["head"] == 0.0
    assert report["sparsity"]["body.1"] > 0
    assert report["pruned"]["params"] == report["parent"]["params"]  # shapes stay
    assert report["pruned"]["nonzero_params"] < 0.6 * report["parent"]["nonzero_params"]


def test_layerwise_unstructured_with_finetuning_keeps_the_zeros(mlp_parent, tmp_path):
    cfg = PruneConfig(kind="unstructured", ratio=0.5, steps=2, step_epochs=1, data=DIGITS, finetune=QUICK)
    child = prune(mlp_parent, cfg, out=tmp_path / "sparse")
    sparsity = child.manifest.lineage.params["report"]["sparsity"]
    assert sparsity["body.1"] == pytest.approx(0.5, abs=0.01)
    assert sparsity["body.4"] == pytest.approx(0.5, abs=0.01)
    assert set(child.state_dict()) == set(mlp_parent.state_dict())  # no weight_orig / weight_mask left


@pytest.mark.parametrize("ratio", [1.0, 1.5, -0.1])
def test_ratio_outside_unit_interval_is_a_config_error(ratio):
    with pytest.raises(ConfigError, match="ratio"):
        parse_config("prune", {"ratio": ratio})


def test_unknown_ignore_and_output_inside_parent(mlp_parent, tmp_path):
    with pytest.raises(CompressError, match="--ignore 'classifier' names no layer"):
        prune(mlp_parent, PruneConfig(ignore=["classifier"], data=DIGITS), out=tmp_path / "x")
    with pytest.raises(CompressError, match="inside the parent artifact"):
        prune(mlp_parent, PruneConfig(data=DIGITS), out=mlp_parent.path / "child")


NET = '''
import torch
from torch import nn

class HardCoded(nn.Module):
    """Hard-codes the flattened size, so removing channels breaks it."""

    def __init__(self, in_channels=1, num_classes=10, input_size=None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.head = nn.Linear(8 * 64, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).reshape(-1, 8 * 64))
'''


def test_model_torch_pruning_cannot_trace_is_one_line(tmp_path, monkeypatch):
    from torchship.artifact import Artifact as Art
    from torchship.models import build_model

    (tmp_path / "hardcoded_net.py").write_text(NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    arch = {"import": "hardcoded_net:HardCoded", "kwargs": {"in_channels": 1}}
    allow = ["hardcoded_net:HardCoded"]
    parent = Art.create(
        name="hard",
        model=build_model(arch, allow_import=allow),
        architecture=arch,
        input={"shape": [1, 8, 8], "mean": [0.3], "std": [0.4]},
        labels=[str(i) for i in range(10)],
    ).save(tmp_path / "parent")
    with pytest.raises(CompressError, match="Torch-Pruning cannot trace hard") as info:
        prune(parent, PruneConfig(data=DIGITS, ignore=[]), out=tmp_path / "x", allow_import=allow)
    assert "\n" not in str(info.value)
