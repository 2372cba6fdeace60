"""Import: from_model and `torchship import` for a BERT classifier, a regression net, .pt2 and .onnx."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from torchship.artifact import Artifact
from torchship.runtime import load_predictor


def test_bert_import_records_the_signature_and_a_program(bert_artifact):
    art = Artifact.load(bert_artifact)
    m = art.manifest
    sig = m.signature
    assert [(t.name, t.dtype, t.shape) for t in sig.inputs] == [
        ("input_ids", "int64", ["batch", "seq"]),
        ("attention_mask", "int64", ["batch", "seq"]),
    ]
    assert sig.inputs[0].range == [0, 1000]
    assert [(t.name, t.shape) for t in sig.outputs] == [("logits", ["batch", 3])]
    assert sig.dims == {"seq": 16}
    assert m.labels == ["neg", "neutral", "pos"]
    assert m.architecture.import_path == "bert_factory:build_bert"
    assert m.architecture.call == "keyword"
    assert m.exports["exported"]["max_abs_diff"] < 1e-5
    assert "model.pt2" in m.files


def test_bert_program_runs_other_sizes_without_the_class(bert_artifact):
    from bert_factory import build_bert

    art = Artifact.load(bert_artifact)
    predictor = load_predictor(art, "exported", warmup=0)
    ids = np.random.default_rng(1).integers(0, 1000, size=(3, 40))
    mask = np.ones_like(ids)
    mask[0, 30:] = 0
    got = predictor.run({"input_ids": ids, "attention_mask": mask})["logits"]
    net = art.build_model(["bert_factory:build_bert"])
    with torch.no_grad():
        want = net(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert isinstance(build_bert, object)


def test_from_model_on_a_hugging_face_model_flattens_model_output(tmp_path):
    from bert_factory import build_bert

    from torchship.importer import from_model

    torch.manual_seed(0)
    net = build_bert()
    ids = torch.randint(0, 1000, (2, 12))
    art = from_model(
        net,
        {"input_ids": ids, "attention_mask": torch.ones_like(ids)},
        name="bert",
        labels=["a", "b", "c"],
        dynamic_dims={n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask")},
        ranges={"input_ids": [0, 1000]},
        out=tmp_path / "a",
    )
    assert art.manifest.signature.output_names == ["logits"]
    assert art.manifest.architecture is None
    loaded = Artifact.load(tmp_path / "a")
    out = load_predictor(loaded, "exported", warmup=1).run(
        {"input_ids": ids.numpy()[:1], "attention_mask": np.ones((1, 12), np.int64)}
    )
    with torch.no_grad():
        np.testing.assert_allclose(out["logits"], net(input_ids=ids[:1]).logits.numpy(), atol=1e-5)


def test_regression_with_two_outputs_has_no_classification_fields(tmp_path):
    from byo_nets import regression_artifact

    net, art = regression_artifact(tmp_path / "reg")
    raw = json.loads((tmp_path / "reg" / "manifest.json").read_text())
    assert raw["task"] == "regression"
    assert raw["labels"] == []
    assert [(o["name"], o["shape"]) for o in raw["signature"]["outputs"]] == [
        ("mean", ["batch", 2]),
        ("scale", ["batch"]),
    ]
    out = load_predictor(art, "auto", warmup=1).run({"input": np.zeros((5, 6), np.float32)})
    assert out["mean"].shape == (5, 2)
    assert out["scale"].shape == (5,)


def test_pt2_import_needs_no_class(tmp_path):
    from byo_nets import TwoHeads

    from torchship.importer import import_source

    torch.manual_seed(0)
    program = torch.export.export(
        TwoHeads(), (torch.randn(4, 6),), dynamic_shapes=({0: torch.export.Dim("n", min=1)},), strict=False
    )
    torch.export.save(program, tmp_path / "reg.pt2")
    art = import_source(tmp_path / "reg.pt2", tmp_path / "run" / "artifact", task="regression")
    assert art.manifest.architecture is None
    assert [t.shape for t in art.manifest.signature.inputs] == [["batch", 6]]
    assert len(art.manifest.signature.outputs) == 2


def test_onnx_import_is_onnx_only(onnx_only):
    art = onnx_only
    sig = art.manifest.signature
    assert [(t.name, t.shape) for t in sig.inputs] == [("x", ["batch", 6])]
    assert sig.output_names == ["mean", "scale"]
    assert art.manifest.exports["onnx"]["file"] == "model.onnx"
    out = load_predictor(Artifact.load(art.path), "auto", warmup=1).run({"x": np.zeros((3, 6), np.float32)})
    assert out["mean"].shape == (3, 2)
    with pytest.raises(Exception, match="imported as a program only"):
        art.build_model()


def test_inspect_shows_the_signature(bert_artifact, run_cli):
    code, out, _ = run_cli("inspect", bert_artifact)
    assert code == 0
    assert "input  input_ids       int64[batch, seq]  range [0, 1000)" in out
    assert "input  attention_mask  int64[batch, seq]" in out
    assert "output logits          float32[batch, 3]" in out
    assert "dims   seq=16 (example sizes)" in out
    assert "labels    3: neg, neutral, pos" in out


def test_inspect_an_onnx_only_artifact(onnx_only, run_cli):
    """No PyTorch class to build: inspect shows the program and its signature, exit 0."""
    code, out, err = run_cli("inspect", onnx_only.path)
    assert code == 0, err
    assert "program only (onnx)" in out
    assert "output mean" in out
