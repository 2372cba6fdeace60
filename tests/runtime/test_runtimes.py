"""One Predictor interface: every runtime loads the same artifact and predicts the same logits."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from torchship.artifact import Artifact
from torchship.runtime import load_predictor, runtimes
from torchship.runtime.base import RuntimeError_
from torchship.runtime.exported import check_pt2_without_pickles
from torchship.runtime.onnxruntime import session_providers
from torchship.testing import tiny_artifact

FILE_RUNTIMES = ["torchscript", "exported", "onnxruntime"]


def _batches():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(n, 1, 8, 8)).astype(np.float32) for n in (1, 5, 33)]


def test_predictions_identical_across_runtimes(exported_mlp):
    art = Artifact.load(exported_mlp.path)
    eager = load_predictor(art, "eager", warmup=0)
    for name in FILE_RUNTIMES:
        predictor = load_predictor(art, name, threads=1, warmup=1)
        for batch in _batches():
            got, want = predictor.predict(batch), eager.predict(batch)
            assert got.shape == want.shape == (len(batch), 10)
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=0, err_msg=name)
            assert (got.argmax(1) == want.argmax(1)).all()
        description = predictor.describe()
        assert description["runtime"] == name
        assert json.dumps(description)
        predictor.close()


def test_auto_measures_and_says_what_it_picked(exported_mlp):
    art = Artifact.load(exported_mlp.path)
    predictor = load_predictor(art, "auto", warmup=1, batch_size=4, repeats=3)
    description = predictor.describe()
    assert set(description["median_ms"]) == {"eager", *FILE_RUNTIMES}
    assert description["picked"] == min(description["median_ms"], key=description["median_ms"].get)
    assert description["runtime"] == f"auto -> {description['picked']}"
    batch = _batches()[1]
    np.testing.assert_allclose(
        predictor.predict(batch), load_predictor(art, "eager").predict(batch), atol=1e-5
    )


def test_onnxruntime_uses_threads_optimizations_and_cpu(exported_mlp):
    predictor = load_predictor(Artifact.load(exported_mlp.path), "onnxruntime", threads=1, warmup=0)
    description = predictor.describe()
    assert description["providers"] == ["CPUExecutionProvider"]
    assert description["graph_optimization"] == "ORT_ENABLE_ALL"
    assert description["threads"] == 1


def test_onnxruntime_spin_false_lets_idle_threads_sleep(exported_mlp):
    """The server asks for spin=False so idle intra-op threads do not burn the HTTP loop's core."""
    spinning = load_predictor(exported_mlp, "onnxruntime", warmup=0)
    sleeping = load_predictor(exported_mlp, "onnxruntime", warmup=0, spin=False)
    key = "session.intra_op.allow_spinning"
    assert sleeping.session.get_session_options().get_session_config_entry(key) == "0"
    with pytest.raises(Exception, match="does not have configuration"):  # ORT's default: spin
        spinning.session.get_session_options().get_session_config_entry(key)


def test_cuda_provider_missing_is_a_clear_error():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert session_providers(ort, "cuda:1")[0] == ("CUDAExecutionProvider", {"device_id": 1})
        return
    with pytest.raises(RuntimeError_, match="has no CUDA provider.*pip install onnxruntime-gpu"):
        session_providers(ort, "cuda")
    assert session_providers(ort, "cpu") == ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("runtime", "fmt"),
    [("onnxruntime", "onnx"), ("torchscript", "torchscript"), ("exported", "exported"), ("aoti", "aoti")],
)
def test_missing_export_names_the_command(tmp_path, runtime, fmt):
    art = tiny_artifact("mlp", path=tmp_path / "art")
    with pytest.raises(
        RuntimeError_, match=rf"has no {fmt} export; run: torchship export .*art --format {fmt}$"
    ):
        load_predictor(art, runtime)


def test_wrong_batch_shape_is_one_line(exported_mlp):
    predictor = load_predictor(Artifact.load(exported_mlp.path), "onnxruntime", warmup=0)
    with pytest.raises(RuntimeError_, match=r"batch has shape \[2, 64\], expected \(n, 1, 8, 8\)"):
        predictor.predict(np.zeros((2, 64), np.float32))


def test_unknown_runtime_lists_choices():
    with pytest.raises(
        RuntimeError_, match="unknown runtime 'onnx'; choose one of: aoti, auto, compile, eager"
    ):
        load_predictor(tiny_artifact("mlp"), "onnx")


def test_every_registered_runtime_is_a_factory():
    names = runtimes.names()
    assert {"eager", "torchscript", "exported", "aoti", "onnxruntime", "compile", "auto"} <= set(names)
    for _, factory in runtimes:
        assert callable(factory)


def test_pt2_with_pickled_payload_is_refused(exported_mlp, tmp_path):
    source = exported_mlp.file("model.pt2")
    check_pt2_without_pickles(source)  # ours carries no pickles
    tampered = tmp_path / "model.pt2"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("_weights_config.json"):
                config = json.loads(data)
                next(iter(config["config"].values()))["use_pickle"] = True
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    with pytest.raises(
        RuntimeError_, match="holds a pickled payload .*tensor marked use_pickle.*does not unpickle"
    ):
        check_pt2_without_pickles(tampered)
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(evil, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if "sample_inputs" in item.filename:
                buffer = io.BytesIO()
                import pickle

                pickle.dump(_Evil(), buffer)
                data = buffer.getvalue()
            dst.writestr(item, data)
    with pytest.raises(RuntimeError_, match="sample inputs weights_only cannot read"):
        check_pt2_without_pickles(evil)


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.mark.slow
def test_compile_matches_eager():
    art = tiny_artifact("mlp", hidden=[32])
    compiled = load_predictor(art, "compile", warmup=1)
    eager = load_predictor(art, "eager")
    for batch in _batches():
        np.testing.assert_allclose(compiled.predict(batch), eager.predict(batch), atol=1e-5)


def test_onnxruntime_spin_run_spins_within_runs_and_sleeps_between_them(exported_mlp):
    """spin="run": intra-op threads spin between a run's operators and stop at its end."""
    predictor = load_predictor(exported_mlp, "onnxruntime", warmup=0, spin="run")
    options = predictor.session.get_session_options()
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    with pytest.raises(Exception, match="does not have configuration"):
        options.get_session_config_entry("session.intra_op.allow_spinning")
