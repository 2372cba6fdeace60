"""What a served model decides at load: how its runtime's idle threads wait."""

from __future__ import annotations

import asyncio

import pytest

from torchship.serve import model as served
from torchship.serve.config import ModelSettings
from torchship.serve.metrics import ServeMetrics
from torchship.testing import tiny_artifact

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def onnx_cnn(tmp_path_factory):
    from torchship.export import export

    art = tiny_artifact("cnn", path=tmp_path_factory.mktemp("cnn") / "artifact")
    return export(art, ["onnx"], max_samples=16)


def test_only_a_long_one_row_run_spins_within_runs():
    assert served.spins_within_runs(6.5)  # a resnet18 on 2 cores
    assert not served.spins_within_runs(0.4)  # a resnet20


def _spin_entries(predictor) -> dict[str, str | None]:
    options = predictor.session.get_session_options()
    entries = {}
    for key in ("session.intra_op.allow_spinning", "session.force_spinning_stop"):
        try:
            entries[key] = options.get_session_config_entry(key)
        except Exception:  # noqa: BLE001 - onnxruntime's pybind error for a key never set
            entries[key] = None
    return entries


@pytest.mark.parametrize(
    ("threshold_ms", "expected"),
    [
        (float("inf"), {"session.intra_op.allow_spinning": "0", "session.force_spinning_stop": None}),
        (0.0, {"session.intra_op.allow_spinning": None, "session.force_spinning_stop": "1"}),
    ],
    ids=["short-run-never-spins", "long-run-spins-within-runs"],
)
async def test_a_model_whose_one_row_run_is_long_spins_within_runs(
    onnx_cnn, monkeypatch, threshold_ms, expected
):
    monkeypatch.setattr(served, "SPIN_WITHIN_RUNS_MS", threshold_ms)
    settings = ModelSettings(runtime="onnxruntime", instances=2, max_batch_size=4)
    model = served.ServedModel("cnn", "1", onnx_cnn, settings, ServeMetrics(), asyncio.get_running_loop())
    try:
        restarted = model.batcher._make_predictor()  # what a crashed instance is replaced with
        for predictor in [*model.batcher._predictors, restarted]:
            assert _spin_entries(predictor) == expected
        restarted.close()
        x = model._example(2)
        assert (await model.infer(x, 10.0)).shape[0] == 2
    finally:
        await model.close()


async def test_a_long_run_picked_by_auto_is_reloaded_on_that_runtime_without_measuring_again(
    onnx_cnn, monkeypatch
):
    from torchship.runtime import auto

    monkeypatch.setattr(served, "SPIN_WITHIN_RUNS_MS", 0.0)
    monkeypatch.setattr(auto, "candidates", lambda artifact, include=(): ["onnxruntime"])
    picks = []
    monkeypatch.setattr(auto.AutoPredictor, "__init__", _recording(auto.AutoPredictor.__init__, picks))
    settings = ModelSettings(runtime="auto", instances=2, max_batch_size=4)
    model = served.ServedModel("cnn", "1", onnx_cnn, settings, ServeMetrics(), asyncio.get_running_loop())
    try:
        assert model.runtime == "onnxruntime"
        assert picks == ["onnxruntime"]  # auto measured once; the reload and the second instance did not
        for predictor in model.batcher._predictors:
            assert predictor.name == "onnxruntime"
            assert _spin_entries(predictor)["session.force_spinning_stop"] == "1"
    finally:
        await model.close()


def _recording(init, picks: list):
    def record(self, chosen, *args, **kwargs):
        picks.append(chosen.name)
        init(self, chosen, *args, **kwargs)

    return record
