import json

import pytest
import torch

from torchship.artifact import Artifact, load
from torchship.errors import ArtifactError
from torchship.testing import sample_inputs, tiny_artifact


def test_round_trip_gives_identical_outputs(tmp_path):
    art = tiny_artifact("cnn")
    saved = art.save(tmp_path / "a")
    loaded = load(tmp_path / "a")
    x = sample_inputs(loaded, 4)
    with torch.no_grad():
        assert torch.equal(art.build_model()(x), loaded.build_model()(x))
    assert loaded.manifest == saved.manifest
    assert set(loaded.manifest.files) == {"weights.safetensors"}
    assert loaded.manifest.files["weights.safetensors"].startswith("sha256:")


def test_manifest_records_everything_the_design_names(tiny_cnn_artifact):
    raw = json.loads((tiny_cnn_artifact.path / "manifest.json").read_text())
    for key in (
        "schema",
        "name",
        "version",
        "created",
        "task",
        "architecture",
        "signature",
        "labels",
        "metrics",
        "lineage",
        "files",
        "env",
    ):
        assert key in raw, key
    assert raw["schema"] == 2
    assert raw["signature"]["inputs"][0]["preprocessing"]["kind"] == "image"
    assert raw["env"]["torch"] == torch.__version__


def test_tampered_weights_are_refused(tiny_cnn_artifact):
    weights = tiny_cnn_artifact.path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        Artifact.load(tiny_cnn_artifact.path)


def test_truncated_weights_are_refused(tiny_cnn_artifact):
    weights = tiny_cnn_artifact.path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        Artifact.load(tiny_cnn_artifact.path)


def test_unknown_schema_and_bad_json_are_refused(tiny_cnn_artifact):
    path = tiny_cnn_artifact.path / "manifest.json"
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "schema": 99}))
    with pytest.raises(ArtifactError, match="schema 99, newer"):
        Artifact.load(tiny_cnn_artifact.path)
    path.write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Artifact.load(tiny_cnn_artifact.path)


def test_manifest_with_unknown_key_is_refused(tiny_cnn_artifact):
    path = tiny_cnn_artifact.path / "manifest.json"
    raw = json.loads(path.read_text())
    raw["surprise"] = 1
    path.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="surprise"):
        Artifact.load(tiny_cnn_artifact.path)


def test_manifest_cannot_point_outside_the_artifact(tiny_cnn_artifact):
    path = tiny_cnn_artifact.path / "manifest.json"
    raw = json.loads(path.read_text())
    raw["files"]["../../etc/passwd"] = "sha256:00"
    path.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="outside the artifact"):
        Artifact.load(tiny_cnn_artifact.path)


def test_missing_directory_and_missing_manifest(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        Artifact.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        Artifact.load(tmp_path / "empty")


def test_a_run_directory_loads_its_artifact(tmp_path):
    art = tiny_artifact("mlp", path=tmp_path / "run" / "artifact")  # as every command's -o OUT lays it out
    assert load(tmp_path / "run").path == art.path
    assert load(tmp_path / "run").digest == art.digest
    with pytest.raises(ArtifactError, match="or a run directory holding artifact/"):
        load(tmp_path)


def test_weights_are_never_unpickled(tiny_cnn_artifact, monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading an artifact")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    Artifact.load(tiny_cnn_artifact.path).build_model()


def test_derive_records_lineage_and_carries_files(tiny_cnn_artifact, tmp_path):
    (tiny_cnn_artifact.path / "notes.txt").write_text("hello")
    with_file = tiny_cnn_artifact.save(tiny_cnn_artifact.path, extra_files={"notes.txt": b"hello"})
    child = with_file.derive(op="prune", params={"ratio": 0.3}, metrics={"val": {"accuracy": 0.5}})
    assert child.manifest.lineage.parent == with_file.digest
    assert child.manifest.lineage.op == "prune"
    assert child.manifest.version == with_file.manifest.version + 1
    assert child.manifest.metrics["val"]["accuracy"] == 0.5
    copied = with_file.save(tmp_path / "copy")
    assert (copied.path / "notes.txt").read_text() == "hello"
    assert Artifact.load(tmp_path / "copy").manifest.files.keys() == {"weights.safetensors", "notes.txt"}


def test_weights_that_do_not_fit_the_architecture(tmp_path):
    art = tiny_artifact("cnn", path=tmp_path / "a")
    raw = json.loads((art.path / "manifest.json").read_text())
    raw["architecture"] = {
        "name": "mlp",
        "kwargs": {"in_channels": 1, "input_size": [8, 8], "num_classes": 10},
    }
    (art.path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="do not fit"):
        Artifact.load(art.path).build_model()
