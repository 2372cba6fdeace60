import pytest
import torch

from torchship.artifact import Artifact
from torchship.compress import CompressError, FuseConfig, PruneConfig, fuse, prune
from torchship.testing import sample_inputs

from .conftest import DIGITS, DIGITS3, checksums


def _trained_statistics(art: Artifact) -> Artifact:
    """Give every batch norm non-trivial running stats and affine terms, as training would."""
    gen = torch.Generator().manual_seed(1)
    state = {}
    for key, value in art.state_dict().items():
        if key.endswith(("running_var", "weight")) and value.dim() == 1:
            value = 0.5 + torch.rand(value.shape, generator=gen)
        elif key.endswith(("running_mean", "bias")) and value.dim() == 1:
            value = torch.randn(value.shape, generator=gen) * 0.3
        state[key] = value
    return Artifact(art.manifest, state, art.path)


@pytest.mark.parametrize("parent_fixture", ["bn_cnn_parent", "resnet_parent"])
def test_fused_matches_unfused_within_1e_5(request, parent_fixture, tmp_path):
    parent = request.getfixturevalue(parent_fixture)
    parent = _trained_statistics(parent).save(tmp_path / "parent")
    before = checksums(parent.path)
    data = DIGITS if parent.manifest.input.shape[0] == 1 else DIGITS3
    child = fuse(parent, FuseConfig(data=data), out=tmp_path / "fused")
    params = child.manifest.lineage.params
    assert params["max_abs_diff"] <= 1e-5
    assert child.manifest.lineage.op == "fuse"
    assert child.manifest.lineage.parent == parent.digest
    reloaded = Artifact.load(child.path).build_model()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in reloaded.modules())
    x = sample_inputs(parent, 32)
    with torch.no_grad():
        assert (reloaded(x) - parent.build_model()(x)).abs().max() <= 1e-5
    assert params["report"]["fused"]["params"] < params["report"]["parent"]["params"]
    assert checksums(parent.path) == before


def test_prune_then_fuse_then_prune_rebuilds(resnet_parent, tmp_path):
    pruned = prune(resnet_parent, PruneConfig(ratio=0.5, data=DIGITS3), out=tmp_path / "p")
    fused = fuse(pruned, FuseConfig(data=DIGITS3), out=tmp_path / "pf")
    again = prune(fused, PruneConfig(ratio=0.3, data=DIGITS3), out=tmp_path / "pfp")
    kwargs = Artifact.load(again.path).manifest.architecture.kwargs
    assert kwargs["fused"]
    assert kwargs["pruned_shapes"]
    model = Artifact.load(again.path).build_model()
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 10)
    assert (
        again.manifest.lineage.params["report"]["pruned"]["params"]
        < fused.manifest.lineage.params["report"]["fused"]["params"]
    )


def test_model_without_batch_norm_has_nothing_to_fuse(mlp_parent, tmp_path):
    with pytest.raises(CompressError, match="no batch norm"):
        fuse(mlp_parent, FuseConfig(data=DIGITS), out=tmp_path / "x")
