"""Exports pass parity against eager, refuse when they do not, and name what cannot be exported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from torchship.artifact import Artifact
from torchship.errors import DataError
from torchship.export import TOLERANCES, ExportError, ExportParityError, export, exporters, resolve_formats
from torchship.testing import tiny_artifact

VERIFIED = ("onnx", "torchscript", "exported")
SAMPLES = 32  # as in conftest.py


@pytest.mark.parametrize("kind", ["mlp", "cnn", "resnet", "byo"])
def test_exports_match_eager(exported, kind):
    art = exported(kind)
    for fmt in [f for f in VERIFIED if f in art.manifest.exports]:
        record = art.manifest.exports[fmt]
        assert record["max_abs_diff"] <= TOLERANCES[fmt], (fmt, record)
        assert record["top1_agreement"] == 1.0, (fmt, record)
        assert record["samples"] == SAMPLES
        assert record["samples_source"] == "random normal, seed 0"
        assert record["file"] in art.manifest.files
    assert "onnx" in art.manifest.exports


@pytest.mark.slow
def test_resnet_script_and_exported_match_eager(tmp_path):
    art = tiny_artifact("resnet", path=tmp_path / "art", depth=8, width=4)
    done = export(art, ["torchscript", "exported"], max_samples=SAMPLES)
    for fmt in ("torchscript", "exported"):
        assert done.manifest.exports[fmt]["max_abs_diff"] <= TOLERANCES[fmt]
        assert done.manifest.exports[fmt]["top1_agreement"] == 1.0


def test_exports_are_checksummed_and_reload(exported):
    art = exported("mlp")
    reloaded = Artifact.load(art.path)  # verifies every sha256
    for name in (
        "model.onnx",
        "model.ts",
        "model.pt2",
        "triton/tiny-mlp/config.pbtxt",
        "triton/tiny-mlp/1/model.onnx",
    ):
        assert name in reloaded.manifest.files
    assert not list(art.path.glob("*.data")), "weights belong inside model.onnx for a small model"
    assert not list(art.path.glob(".export-*")), "the staging directory is removed"


def test_onnx_has_dynamic_batch_opset_and_names(exported):
    import onnx

    model = onnx.load(str(exported("cnn").file("model.onnx")))
    onnx.checker.check_model(model, full_check=True)
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 18
    (graph_input,) = model.graph.input
    assert graph_input.name == "input"
    assert graph_input.type.tensor_type.shape.dim[0].dim_param  # symbolic, not a fixed batch
    assert [o.name for o in model.graph.output] == ["logits"]


def test_tampered_onnx_weights_are_refused(tmp_path, monkeypatch):
    import onnx
    from onnx import numpy_helper

    from torchship.export import onnx as onnx_export

    real_slim = onnx_export.slim

    def slim_then_tamper(model):
        model, slimmed = real_slim(model)
        init = max(model.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.01, init.name))
        return model, slimmed

    monkeypatch.setattr(onnx_export, "slim", slim_then_tamper)
    art = tiny_artifact("mlp", path=tmp_path / "art", hidden=[32])
    before = (tmp_path / "art" / "manifest.json").read_text()
    with pytest.raises(ExportParityError, match=r"onnx export differs from eager PyTorch: max \|Δ\|") as info:
        export(art, ["onnx"], max_samples=SAMPLES)
    assert "\n" not in str(info.value)
    assert (tmp_path / "art" / "manifest.json").read_text() == before, "a refused export writes nothing"
    assert not (tmp_path / "art" / "model.onnx").exists()
    assert onnx  # imported for the helper above


def test_tolerance_is_configurable_and_recorded(tmp_path):
    art = tiny_artifact("mlp", path=tmp_path / "art", hidden=[32])
    with pytest.raises(ExportParityError, match="tolerance 0"):
        export(art, ["torchscript"], tolerance=0.0, data=np.full((4, 1, 8, 8), 1e3, np.float32))
    done = export(art, ["torchscript"], out=tmp_path / "out", tolerance={"torchscript": 1e-3}, max_samples=8)
    assert done.manifest.exports["torchscript"]["tolerance"] == 1e-3
    assert done.path == tmp_path / "out" / "artifact", "out= is a run directory, as for every command"
    assert "model.ts" not in Artifact.load(tmp_path / "art").manifest.files, "out= leaves the source alone"


def test_validation_inputs_are_used_and_sampled(tmp_path):
    art = tiny_artifact("mlp", path=tmp_path / "art", hidden=[32])
    val = np.random.default_rng(1).normal(size=(40, 1, 8, 8)).astype(np.float32)
    done = export(art, ["torchscript"], data=val, max_samples=16)
    record = done.manifest.exports["torchscript"]
    assert record["samples"] == 16
    assert record["samples_source"] == "given, seeded sample of 16"
    with pytest.raises(DataError, match=r"parity inputs have shape \[3, 64\]"):
        export(art, ["torchscript"], data=np.zeros((3, 64), np.float32))


def test_unknown_format_lists_the_choices():
    with pytest.raises(ExportError, match="unknown export format 'onx'; choose one of: aoti, exported, onnx"):
        resolve_formats("onx")
    assert resolve_formats("triton,torchscript") == ["onnx", "torchscript", "triton"]


def test_every_registered_format_has_a_tolerance_or_delegates():
    for name, exporter in exporters:
        assert callable(exporter)
        assert name in TOLERANCES or name == "triton", name


def test_data_dependent_model_names_the_line(tmp_path, make_byo):
    art = make_byo("DataDependentNet", tmp_path / "art")
    with pytest.raises(ExportError) as info:
        export(art, ["exported"], allow_import=["byo_models:DataDependentNet"], max_samples=4)
    message = str(info.value)
    assert "torch.export cannot trace DataDependentNet" in message
    assert "byo_models.py:" in message
    assert "in forward" in message
    assert "\n" not in message


def test_onnx_failure_names_the_op(tmp_path, make_byo):
    art = make_byo("EigenNet", tmp_path / "art")
    with pytest.raises(ExportError) as info:
        export(art, ["onnx"], allow_import=["byo_models:EigenNet"], max_samples=4)
    message = str(info.value)
    assert "cannot export EigenNet to ONNX: unsupported op aten::_linalg_eigh" in message
    assert "\n" not in message
    # the same model is fine in the formats that support the op
    done = export(art, ["exported"], allow_import=["byo_models:EigenNet"], max_samples=8)
    assert done.manifest.exports["exported"]["top1_agreement"] == 1.0


def test_unsaved_artifact_needs_out():
    with pytest.raises(ExportError, match="pass out=DIR"):
        export(tiny_artifact("mlp"), ["torchscript"])


@pytest.mark.slow
def test_aoti_package_matches_eager(tmp_path):
    from torchship.runtime import load_predictor

    art = tiny_artifact("mlp", path=tmp_path / "art", hidden=[32])
    done = export(art, ["aoti"], max_samples=SAMPLES)
    record = done.manifest.exports["aoti"]
    assert record["max_abs_diff"] <= TOLERANCES["aoti"]
    predictor = load_predictor(Artifact.load(done.path), "aoti")
    assert predictor.predict(np.zeros((3, 1, 8, 8), np.float32)).shape == (3, 10)
    assert json.dumps(predictor.describe())


def test_every_format_names_a_registered_runtime_and_only_triton_has_none():
    from torchship.export.base import format_runtimes
    from torchship.runtime.base import runtimes

    served = format_runtimes()
    assert list(served) == ["onnx", "torchscript", "exported", "aoti"]  # the order auto tries them in
    assert all(runs.runtime in runtimes for runs in served.values())
    assert served["onnx"].module == "onnxruntime"
