import pytest
import torch

from torchship.artifact import Artifact
from torchship.compress import CompressError, EnsembleConfig, ensemble
from torchship.testing import sample_inputs, tiny_artifact

from .conftest import DIGITS, checksums


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    return [
        tiny_artifact("mlp", hidden=[16], seed=0, path=root / "a"),
        tiny_artifact("mlp", hidden=[16], seed=1, path=root / "b"),
        tiny_artifact("cnn", channels=[4, 8], hidden=16, seed=2, path=root / "c"),
    ]


def test_mean_is_the_mean_of_member_logits(members, tmp_path):
    before = [checksums(m.path) for m in members]
    child = ensemble(members, EnsembleConfig(mode="mean", data=DIGITS), out=tmp_path / "mean")
    model = Artifact.load(child.path).build_model()
    x = sample_inputs(members[0], 16)
    with torch.no_grad():
        expected = torch.stack([m.build_model()(x) for m in members]).mean(0)
        assert torch.allclose(model(x), expected, atol=1e-6)
    assert any(k.startswith("members.2.") for k in child.state_dict())
    params = child.manifest.lineage.params
    assert [m["digest"] for m in params["members"]] == [m.digest for m in members]
    assert child.manifest.lineage.op == "ensemble"
    assert "mean" in params["report"]
    assert [checksums(m.path) for m in members] == before


def test_vote_picks_the_majority_and_exports_as_one_graph(members, tmp_path):
    child = ensemble(members, EnsembleConfig(mode="vote", data=DIGITS), out=tmp_path / "vote")
    model = Artifact.load(child.path).build_model()
    x = sample_inputs(members[0], 64)
    with torch.no_grad():
        picks = torch.stack([m.build_model()(x).argmax(1) for m in members])  # (members, batch)
        scores = model(x)
    majority = [row.bincount(minlength=10) for row in picks.T]
    for votes, score in zip(majority, scores, strict=False):
        if votes.max() >= 2:
            assert score.argmax() == votes.argmax()
    onnx = pytest.importorskip("onnxruntime")
    path = tmp_path / "vote.onnx"
    torch.onnx.export(model, (x[:1],), str(path), dynamo=True, dynamic_shapes={"x": {0: "batch"}})
    session = onnx.InferenceSession(str(path))
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert (torch.from_numpy(got).argmax(1) == scores.argmax(1)).all()


def test_soup_averages_weights(members, tmp_path):
    child = ensemble(members[:2], EnsembleConfig(mode="soup", data=DIGITS), out=tmp_path / "soup")
    a, b = members[0].state_dict(), members[1].state_dict()
    for key, value in child.state_dict().items():
        assert torch.allclose(value, (a[key] + b[key]) / 2)
    assert child.manifest.architecture == members[0].manifest.architecture


def test_mismatched_members_are_one_line_errors(members, tmp_path):
    with pytest.raises(CompressError, match="soup needs one architecture.*differs from member 0 in model"):
        ensemble(members, EnsembleConfig(mode="soup", data=DIGITS), out=tmp_path / "x")
    other_labels = tiny_artifact("mlp", num_classes=3, path=tmp_path / "three")
    with pytest.raises(CompressError, match="predict different labels"):
        ensemble([members[0], other_labels], EnsembleConfig(data=DIGITS), out=tmp_path / "x")
    other_shape = tiny_artifact("mlp", shape=(1, 4, 4), path=tmp_path / "small")
    with pytest.raises(CompressError, match="take different inputs") as info:
        ensemble([members[0], other_shape], EnsembleConfig(data=DIGITS), out=tmp_path / "x")
    assert "\n" not in str(info.value)
    with pytest.raises(CompressError, match="at least two members"):
        ensemble(members[:1], out=tmp_path / "x")
