"""One Triton writer for every artifact with an ONNX program: a trained classifier and its int8 child.

(Imported BERT and ONNX-only artifacts are checked in tests/importer/test_export_signed.py.)
"""

from __future__ import annotations

import pytest
from triton_checks import check_repository, parse_config, repository

from torchship.artifact import Artifact
from torchship.export import export
from torchship.export.triton import model_name
from torchship.runtime import load_predictor


def test_classifier_repository_parses_runs_and_answers_probabilities(exported):
    art = exported("mlp")
    eager = load_predictor(art, "eager", warmup=0)
    config = check_repository(art, eager, dims=[{}])
    assert [t.name for t in config.output] == ["logits", "probabilities"]
    assert list(config.input[0].dims) == art.manifest.input.shape
    assert config.max_batch_size == 64
    repo = repository(art)
    assert (repo / config.output[0].label_filename).read_text().split() == art.manifest.labels
    assert config.output[1].label_filename == "labels.txt"
    record = art.manifest.exports["triton"]
    assert record["version"] == "1"
    assert record["output_names"] == ["logits", "probabilities"]
    assert record["checked"]["probabilities_max_abs_diff"] <= 1e-6
    assert record["max_abs_diff"] <= 1e-4  # the ONNX parity it stands on


def test_readme_gives_the_exact_normalization(exported):
    art = exported("mlp")
    text = (repository(art) / "README.md").read_text()
    pre = art.manifest.signature.inputs[0].preprocessing
    assert f"scale {pre.scale!r}, mean {pre.mean}, std {pre.std}" in text
    assert "`probabilities`" in text


@pytest.fixture(scope="module")
def int8_child(exported, tmp_path_factory):
    from torchship.compress import QuantizeConfig, quantize

    parent = exported("mlp")
    cfg = QuantizeConfig(mode="dynamic", data={"name": "digits", "limit": 300})
    child = quantize(parent, cfg, out=tmp_path_factory.mktemp("int8") / "run")
    return export(Artifact.load(child.path), "triton")


def test_int8_child_ships_its_int8_graph_under_its_own_version(int8_child):
    art = int8_child
    assert art.manifest.version == 2
    record = art.manifest.exports["triton"]
    assert record["verified_by"] == "onnx-int8"
    assert record["version"] == "2"
    int8 = load_predictor(art, "onnxruntime", warmup=0)  # the int8 program the server runs
    config = check_repository(art, int8, dims=[{}], atol=1e-6)
    assert [t.name for t in config.output] == ["logits", "probabilities"]
    import onnx

    graph = onnx.load(str(repository(art) / "2" / "model.onnx")).graph
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for n in graph.node)


def test_config_comment_parses_as_protobuf_text(tmp_path):
    from torchship.export.triton import model_config

    text = model_config("m", [{"name": "x", "data_type": "TYPE_FP32", "dims": [-1]}], [], 0, "KIND_CPU")
    (tmp_path / "config.pbtxt").write_text(text)
    config = parse_config(tmp_path)
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")  # Triton refuses dynamic batching without a batch dim


@pytest.mark.parametrize(
    ("name", "want"), [("digits cnn/v2", "digits-cnn-v2"), ("ok_name-1.0", "ok_name-1.0"), ("///", "model")]
)
def test_model_name_is_a_directory_name(name, want):
    assert model_name(name) == want


def test_an_encrypted_artifact_is_refused_in_one_line(exported, tmp_path):
    from torchship.export import ExportError
    from torchship.export.triton import write_repository

    art = exported("mlp")
    sealed = art.with_manifest(encryption={"files": ["model.onnx"]})
    with pytest.raises(ExportError, match="encrypted and Triton cannot read"):
        write_repository(sealed, art.file("model.onnx"), tmp_path, 64, "cpu")


def test_a_version_triton_cannot_take_falls_back_to_1_and_says_so(exported):
    from torchship.export.triton import version_dir

    art = exported("mlp")
    assert version_dir(art.with_manifest(version=7).manifest) == ("7", None)
    version, note = version_dir(art.with_manifest(version=0).manifest)
    assert version == "1"
    assert "version 0 is not a Triton version" in note


def test_a_graph_that_differs_from_the_signature_is_refused(exported, tmp_path):
    from torchship.export import ExportError
    from torchship.export.triton import write_repository

    art = exported("mlp")
    signature = art.manifest.signature.model_dump()
    signature["inputs"][0]["name"] = "pixels"
    renamed = art.with_manifest(signature=signature)
    with pytest.raises(ExportError, match=r"model.onnx takes inputs \['input'\] but the signature names"):
        write_repository(renamed, art.file("model.onnx"), tmp_path, 64, "cpu")
    signature = art.manifest.signature.model_dump()
    signature["outputs"][0]["shape"] = ["batch", 7]
    with pytest.raises(ExportError, match="output 'logits' is float32"):
        write_repository(art.with_manifest(signature=signature), art.file("model.onnx"), tmp_path, 64, "cpu")


def test_an_unbatched_tensor_keeps_every_dim():
    from torchship.artifact.manifest import TensorSpec
    from torchship.export.triton import tensor_config

    spec = TensorSpec(name="x", dtype="int64", shape=[4, "seq"])
    assert tensor_config(spec, batched=False) == {"name": "x", "data_type": "TYPE_INT64", "dims": [4, -1]}
    assert tensor_config(spec)["dims"] == [-1]
