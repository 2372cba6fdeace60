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
    with pytest.raises(ExportError, match="torchscript export is not available"):
        export(art, "torchscript")
