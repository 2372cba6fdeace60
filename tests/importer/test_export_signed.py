"""Export of imported models: ONNX with every named dim dynamic, parity per output, Triton config."""

from __future__ import annotations

import numpy as np
import pytest

from torchship.artifact import Artifact
from torchship.export import ExportError, export
from torchship.runtime import load_predictor


@pytest.fixture(scope="module")
def bert_exported(bert_artifact, tmp_path_factory):
    out = tmp_path_factory.mktemp("bert-exported")
    return export(Artifact.load(bert_artifact), "onnx,triton", out=out)


def test_bert_onnx_has_dynamic_batch_and_seq_and_parity(bert_exported):
    import onnx

    record = bert_exported.manifest.exports["onnx"]
    assert record["max_abs_diff"] <= 1e-4
    assert record["top1_agreement"] == 1.0
    assert set(record["outputs"]) == {"logits"}
    graph = onnx.load(str(bert_exported.path / "model.onnx")).graph
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.input}
    assert dims == {"input_ids": ["batch", "seq"], "attention_mask": ["batch", "seq"]}
    ort = load_predictor(bert_exported, "onnxruntime", warmup=0)
    ids = np.random.default_rng(0).integers(0, 1000, size=(4, 33))
    got = ort.run({"input_ids": ids, "attention_mask": np.ones_like(ids)})["logits"]
    want = load_predictor(bert_exported, "exported", warmup=0).run(
        {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    )["logits"]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_bert_triton_config_lists_every_input_with_its_type(bert_exported):
    from triton_checks import check_repository, repository

    reference = load_predictor(bert_exported, "exported", warmup=0)
    config = check_repository(bert_exported, reference, dims=[{"seq": 16}, {"seq": 9}])
    assert [(t.name, list(t.dims)) for t in config.input] == [("input_ids", [-1]), ("attention_mask", [-1])]
    assert {t.data_type for t in config.input} == {config.input[0].data_type}  # both TYPE_INT64
    assert [t.name for t in config.output] == ["logits", "probabilities"]
    assert "integers in [0, 1000)" in (repository(bert_exported) / "README.md").read_text()


def test_regression_exports_per_output_without_classification_fields(tmp_path):
    from byo_nets import regression_artifact

    net, art = regression_artifact(tmp_path / "reg")
    done = export(art, ["onnx", "triton"])
    record = done.manifest.exports["onnx"]
    assert set(record["outputs"]) == {"mean", "scale"}
    assert "top1_agreement" not in record
    root = done.path / "triton" / "reg"
    assert not (root / "labels.txt").exists()
    assert "label_filename" not in (root / "config.pbtxt").read_text()


def test_onnx_only_artifact_exports_triton_but_not_torchscript(onnx_only):
    from triton_checks import check_repository

    art = onnx_only
    done = export(art, "triton")
    assert done.manifest.exports["triton"]["verified_by"] == "onnx"
    config = check_repository(done, load_predictor(done, "onnxruntime", warmup=0), dims=[{}], atol=0)
    assert [t.name for t in config.output] == ["mean", "scale"]  # regression: no probabilities
    with pytest.raises(
        ExportError, match="torchscript export is traced from the model's PyTorch class, and reg"
    ):
        export(art, "torchscript")
    with pytest.raises(ExportError, match="neither a PyTorch program nor a class"):
        export(art, "aoti")


BERT_CLASS = "bert_factory:build_bert"


def test_bert_torchscript_is_traced_from_the_class_with_parity_per_output(bert_artifact, tmp_path):
    done = export(Artifact.load(bert_artifact), "torchscript", out=tmp_path, allow_import=[BERT_CLASS])
    assert done.path == tmp_path / "artifact"  # -o OUT is a run directory, as for trained artifacts
    record = done.manifest.exports["torchscript"]
    assert record["method"] == "trace"
    assert set(record["outputs"]) == {"logits"}
    assert record["max_abs_diff"] <= 1e-4
    ts = load_predictor(done, "torchscript", warmup=0)
    program = load_predictor(done, "exported", warmup=0)
    for batch, seq in [(1, 16), (3, 9)]:  # tracing must not have fixed the batch or the sequence length
        ids = np.random.default_rng(seq).integers(0, 1000, size=(batch, seq))
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        np.testing.assert_allclose(ts.run(feeds)["logits"], program.run(feeds)["logits"], atol=1e-4)


def test_torchscript_without_the_class_is_refused_in_one_line(bert_artifact, tmp_path):
    with pytest.raises(ExportError, match=f"pass --allow-import {BERT_CLASS}") as info:
        export(Artifact.load(bert_artifact), "torchscript", out=tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "manifest.json").exists()


@pytest.mark.slow
def test_two_input_two_output_model_exports_to_torchscript_and_aoti(tmp_path):
    from byo_nets import token_pair_artifact

    art = token_pair_artifact(tmp_path / "pair")
    done = export(art, "torchscript,aoti", allow_import=["byo_nets:TokenPair"])
    for fmt in ("torchscript", "aoti"):
        record = done.manifest.exports[fmt]
        assert set(record["outputs"]) == {"logits", "pooled"}, fmt
        assert record["max_abs_diff"] <= 1e-4, fmt
        assert record["top1_agreement"] == 1.0, fmt
    reference = load_predictor(done, "exported", warmup=0)
    for fmt in ("torchscript", "aoti"):
        predictor = load_predictor(done, fmt, warmup=0)
        for batch, seq in [(1, 7), (4, 3)]:
            ids = np.random.default_rng(batch).integers(0, 50, size=(batch, seq))
            feeds = {"ids": ids, "mask": np.ones_like(ids)}
            got, want = predictor.run(feeds), reference.run(feeds)
            for name in ("logits", "pooled"):
                np.testing.assert_allclose(got[name], want[name], atol=1e-4, err_msg=f"{fmt} {name}")
