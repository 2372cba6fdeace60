"""int8 quantization: ONNX Runtime static/dynamic with the accuracy fallback, and torchao pt2e (+ QAT)."""

from __future__ import annotations

import zipfile

import numpy as np
import onnx
import pytest
import torch

from torchship.artifact import Artifact
from torchship.bench import TimingConfig, bench
from torchship.compress import CompressError, QuantizeConfig, quantize
from torchship.compress.base import parse_config
from torchship.errors import ConfigError
from torchship.runtime import load_predictor

from .conftest import checksums

SMALL_DIGITS = {"limit": 300}


@pytest.fixture(scope="module")
def static_int8(trained_cnn, tmp_path_factory):
    before = checksums(trained_cnn.path)
    cfg = QuantizeConfig(mode="static", calibration="entropy", calibration_size=64)
    return before, quantize(trained_cnn, cfg, out=tmp_path_factory.mktemp("static") / "int8")


def graph_ops(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def val_inputs(art: Artifact, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    from torchship.compress.measure import load_val

    val = load_val(art, None)
    return val.x[:n].numpy(), val.y[:n].numpy()


def test_static_int8_artifact_records_how_it_was_made(trained_cnn, static_int8):
    before, child = static_int8
    lineage = child.manifest.lineage
    assert lineage.parent == trained_cnn.digest
    assert lineage.op == "quantize"
    assert lineage.params["mode"] == "static"
    assert lineage.params["calibration"] == "entropy"
    assert lineage.params["calibration_size"] == 64
    assert lineage.params["calibration_split"] == "train"
    assert lineage.params["float_nodes"] == {}
    record = child.manifest.exports["onnx-int8"]
    assert record["file"] == "model.int8.onnx"
    assert record["weights"] == "int8 per-channel"
    assert record["top1_agreement"] >= 0.98
    assert "model.int8.onnx" in child.manifest.files
    assert "model.onnx" in child.manifest.files
    ops = graph_ops(child.path / "model.int8.onnx")
    assert "QuantizeLinear" in ops
    assert "DequantizeLinear" in ops
    int8_weights = [
        t
        for t in onnx.load(str(child.path / "model.int8.onnx")).graph.initializer
        if t.data_type == onnx.TensorProto.INT8
    ]
    assert len(int8_weights) >= 4  # two convs and two linears carry int8 weights
    int8_values = sum(int(np.prod(t.dims)) for t in int8_weights)
    assert int8_values > 0.95 * sum(p.numel() for p in trained_cnn.build_model().parameters() if p.dim() > 1)
    assert (child.path / "model.int8.onnx").stat().st_size < (child.path / "model.onnx").stat().st_size
    assert (
        abs(child.manifest.metrics["val"]["accuracy"] - trained_cnn.manifest.metrics["val"]["accuracy"])
        <= 0.02
    )
    assert checksums(trained_cnn.path) == before


def test_an_int8_artifact_is_not_quantized_again(static_int8, tmp_path):
    _, child = static_int8
    with pytest.raises(CompressError, match="already int8 .static.; quantize its float parent"):
        quantize(child, QuantizeConfig(mode="dynamic"), out=tmp_path / "twice")


def test_runtime_runs_the_int8_graph_unless_fp32_is_asked(static_int8):
    _, child = static_int8
    child = Artifact.load(child.path)
    x, y = val_inputs(child)
    int8 = load_predictor(child, "onnxruntime", warmup=0)
    fp32 = load_predictor(child, "onnxruntime", warmup=0, precision="fp32")
    assert int8.describe()["file"] == "model.int8.onnx"
    assert fp32.describe()["file"] == "model.onnx"
    a, b = int8.predict(x), fp32.predict(x)
    assert not np.allclose(a, b)  # really a different (quantized) graph
    # the same model, quantized: most answers agree (about 2.5 % flipped with onnxruntime 1.32 here);
    # the quality bar for int8 is the accuracy drop, asserted where the artifact is made
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.95
    rows = bench([child], "onnxruntime", [4], timing=TimingConfig(1, 5, 0.0, 1.0), data=(x, y))
    assert rows[0].ok
    assert rows[0].file == "model.int8.onnx"
    assert rows[0].accuracy == pytest.approx((a.argmax(1) == y).mean())


def test_exporting_an_int8_artifact_is_refused(static_int8, tmp_path):
    from torchship.export import ExportError, export

    _, child = static_int8
    with pytest.raises(ExportError, match="int8 artifact .*onnx-int8.*export the parent"):
        export(Artifact.load(child.path), ["torchscript"], out=tmp_path / "x")


def test_auto_considers_only_runtimes_that_run_the_int8_program(trained_cnn, static_int8):
    """eager would run the float weights the int8 graph was made from: a different model."""
    from torchship.runtime.auto import candidates

    _, child = static_int8
    assert candidates(Artifact.load(child.path), include=("compile",)) == ["onnxruntime"]
    assert candidates(trained_cnn)[0] == "eager"
    auto = load_predictor(Artifact.load(child.path), "auto", warmup=0, batch_size=2, repeats=2)
    assert auto.describe()["picked"] == "onnxruntime"
    assert auto.describe()["file"] == "model.int8.onnx"


def test_dynamic_int8_never_quantizes_a_convolution(trained_cnn, tmp_path):
    child = quantize(trained_cnn, QuantizeConfig(mode="dynamic", data=SMALL_DIGITS), out=tmp_path / "dyn")
    floats = child.manifest.lineage.params["float_nodes"]
    assert len(floats) == 2
    assert all("Conv" in reason for reason in floats.values())
    ops = graph_ops(child.path / "model.int8.onnx")
    assert "MatMulInteger" in ops
    assert "ConvInteger" not in ops
    assert ops.count("Conv") == 2
    assert child.manifest.lineage.params["calibration"] is None
    assert child.manifest.exports["onnx-int8"]["top1_agreement"] >= 0.98


@pytest.fixture(scope="module")
def outlier_cnn(trained_cnn, tmp_path_factory):
    """The trained cnn with one conv channel scaled by 1000 and the next conv scaled back.

    fp32 computes the same function (ReLU and max-pool commute with a positive scale), but a
    per-tensor uint8 activation range now spans the outlier, so int8 crushes every other channel.
    """
    model = trained_cnn.build_model()
    with torch.no_grad():
        model.features[0].weight[:2] *= 1000.0
        model.features[0].bias[:2] *= 1000.0
        model.features[3].weight[:, :2] /= 1000.0
    return trained_cnn.derive(op="test.outlier", model=model).save(tmp_path_factory.mktemp("outlier") / "art")


def test_fallback_keeps_the_most_sensitive_layers_float(outlier_cnn, tmp_path):
    plain = quantize(
        outlier_cnn, QuantizeConfig(calibration_size=64, data=SMALL_DIGITS), out=tmp_path / "plain"
    )
    assert plain.manifest.lineage.params["accuracy_drop"] > 0.05  # the outlier really hurts int8
    cfg = QuantizeConfig(calibration_size=64, max_accuracy_drop=0.01, data=SMALL_DIGITS)
    child = quantize(outlier_cnn, cfg, out=tmp_path / "fallback")
    params = child.manifest.lineage.params
    assert params["accuracy_drop"] <= 0.01
    kept = params["fallback"]["kept_float"]
    assert 1 <= len(kept) < 4
    assert set(kept) == set(params["float_nodes"])
    sensitivity = params["fallback"]["sensitivity"]
    assert len(sensitivity) == 4  # every quantizable node measured on its own
    ranked = sorted(
        sensitivity, key=lambda n: (sensitivity[n]["accuracy_drop"], sensitivity[n]["mse"]), reverse=True
    )
    assert kept == ranked[: len(kept)]  # greedy: most sensitive first
    assert set(kept).isdisjoint(child.manifest.exports["onnx-int8"]["quantized_nodes"])
    assert (
        load_predictor(Artifact.load(child.path), "onnxruntime", warmup=0).describe()["file"]
        == "model.int8.onnx"
    )


def test_pt2e_int8_saves_a_pickle_free_program_the_exported_runtime_runs(trained_cnn, tmp_path):
    import subprocess
    import sys
    import textwrap

    from torchship.runtime.exported import check_pt2_without_pickles

    child = quantize(
        trained_cnn,
        QuantizeConfig(mode="pt2e", calibration_size=64, data=SMALL_DIGITS),
        out=tmp_path / "pt2e",
    )
    record = child.manifest.exports["exported"]
    assert record["file"] == "model.int8.pt2"
    assert record["quantizer"] == "X86InductorQuantizer"
    assert record["top1_agreement"] >= 0.98
    check_pt2_without_pickles(child.path / "model.int8.pt2")
    with zipfile.ZipFile(child.path / "model.int8.pt2") as archive:
        stored = sum(i.file_size for i in archive.infolist() if "/data/weights/weight_" in i.filename)
    float_bytes = sum(t.numel() * 4 for t in trained_cnn.state_dict().values() if t.is_floating_point())
    assert stored < 0.5 * float_bytes  # int8 weights only: the float originals are not saved beside them
    child = Artifact.load(child.path)
    x, _ = val_inputs(child, 50)
    logits = load_predictor(child, "exported", warmup=0).predict(x)
    reference = trained_cnn.build_model()(torch.from_numpy(x)).detach().numpy()
    assert not np.allclose(logits, reference)
    assert (logits.argmax(1) == reference.argmax(1)).mean() >= 0.98
    assert child.manifest.lineage.params["backend"].startswith("torchao pt2e")
    script = textwrap.dedent(f"""
        import sys, numpy as np
        from torchship.artifact import Artifact
        from torchship.runtime import load_predictor
        art = Artifact.load({str(child.path)!r})
        print(load_predictor(art, "exported", warmup=0).predict(np.zeros((2, 1, 8, 8), np.float32)).shape)
        print("torchao" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["(2,", "10)", "False"]  # a fresh process serves it with torch alone


def test_qat_fine_tunes_through_the_training_engine(trained_cnn, tmp_path):
    cfg = QuantizeConfig(
        mode="pt2e", qat_epochs=1, data=SMALL_DIGITS, finetune={"lr": 1e-4, "batch_size": 64}
    )
    child = quantize(trained_cnn, cfg, out=tmp_path / "qat")
    assert len(child.manifest.curves) == 1
    assert child.manifest.lineage.params["qat_epochs"] == 1
    assert child.manifest.lineage.params["calibration_split"] is None
    changed = [
        k
        for k, v in child.build_model().state_dict().items()
        if v.is_floating_point() and not torch.equal(v, trained_cnn.state_dict()[k])
    ]
    assert changed  # the QAT-trained float weights were carried back into weights.safetensors
    assert load_predictor(Artifact.load(child.path), "exported", warmup=0).predict(
        np.zeros((3, 1, 8, 8), np.float32)
    ).shape == (3, 10)


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (
            {"mode": "dynamic", "calibration": "entropy"},
            "calibration: applies to --mode static only .dynamic",
        ),
        (
            {"mode": "static", "qat_epochs": 2},
            "qat_epochs: quantization-aware training runs on --mode pt2e only",
        ),
        ({"calibration": "kl"}, "calibration"),
        ({"max_accuracy_drop": 1.5}, "max_accuracy_drop"),
    ],
)
def test_bad_settings_are_config_errors(config, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_config("quantize", config)


def test_pt2e_over_budget_is_refused_in_one_line(outlier_cnn, tmp_path):
    with pytest.raises(CompressError, match="pt2e int8 .* loses") as info:
        quantize(
            outlier_cnn,
            QuantizeConfig(mode="pt2e", calibration_size=32, max_accuracy_drop=0.0, data=SMALL_DIGITS),
            out=tmp_path / "x",
        )
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x").exists()


def test_cli_quantize_prints_the_float_nodes(run_cli, trained_cnn, tmp_path):
    code, out, err = run_cli(
        "compress",
        trained_cnn.path,
        "quantize",
        "--mode",
        "dynamic",
        "--set",
        "data.limit=300",
        "-o",
        tmp_path / "q",
    )
    assert code == 0, err
    assert "int8 dynamic (onnxruntime)" in out
    assert "kept float" in out
    assert "int8 onnx" in out
    code, _, err = run_cli(
        "compress",
        trained_cnn.path,
        "quantize",
        "--mode",
        "dynamic",
        "--calibration",
        "entropy",
        "-o",
        tmp_path / "bad",
    )
    assert code == 2
    assert err.strip().startswith("error: ")
    assert len(err.strip().splitlines()) == 1
