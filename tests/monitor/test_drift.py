"""The drift measures on their own: PSI, the reference bins, the rolling window, old manifests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from monitor_helpers import normalized, shifted

from torchship.data import Split, reference_stats
from torchship.monitor import Baseline, DriftThresholds, Window, count_batch, psi, score


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift():
    base = np.full(10, 0.1)
    assert psi(base, base * 7) == pytest.approx(0.0)
    small = psi(base, np.array([0.12, 0.08, *[0.1] * 8]))
    large = psi(base, np.array([0.5, 0.05, *[0.05625] * 8]))
    assert 0 < small < 0.1 < 0.25 < large
    assert np.isfinite(psi(base, np.array([1.0, *[0.0] * 9])))  # empty bins stay finite


def test_reference_bins_split_training_values_into_deciles_and_handle_ties():
    x = torch.randn(500, 2, 4, 4)
    x[:, 0] = 0.0  # a constant channel: every decile is the same value
    ref = reference_stats(Split(x, torch.zeros(500, dtype=torch.long)), num_classes=2)
    assert len(ref["input_bin_edges"][1]) == 9
    assert ref["input_bin_freq"][1] == pytest.approx([0.1] * 10, abs=0.01)
    assert ref["input_bin_edges"][0] == pytest.approx([0.0], abs=1e-3)
    assert ref["input_bin_freq"][0] == [0.0, 1.0]  # the tie lands in one bin, round-off or not


def _scores(artifact, raw, window_rows=None, values_per_row=None):
    baseline = Baseline.from_artifact(artifact)
    model = artifact.build_model().eval()
    x = normalized(artifact, raw)
    with torch.inference_mode():
        logits = model(torch.from_numpy(x)).numpy()
    window = Window(baseline, window_rows)
    rng = np.random.default_rng(0)
    for i in range(0, len(x), 64):
        window.add(count_batch(baseline, x[i : i + 64], logits[i : i + 64], values_per_row, rng))
    return score(baseline, window.snapshot(), DriftThresholds(), min_rows=100)


def test_held_out_digits_score_near_zero(digits_artifact, digits_raw):
    raw, labels = digits_raw
    held_out = raw[-400:]  # the split is a seeded permutation: these are mostly train and val alike
    s = _scores(digits_artifact, held_out)
    assert s.max_input_psi < 0.05, s
    assert s.prediction_psi < 0.1, s
    assert abs(s.confidence_drop) < 0.05
    assert s.status == "ok"
    assert s.drift == []


@pytest.mark.parametrize(
    ("kind", "flagged"),
    [("brightness", "input_psi:channel0"), ("noise", "input_psi:channel0"), ("imbalanced", "prediction_psi")],
)
def test_shifted_streams_score_clearly_above_threshold(digits_artifact, digits_raw, kind, flagged):
    raw, labels = shifted(*digits_raw, kind)
    s = _scores(digits_artifact, raw)
    assert flagged in s.drift, s
    value = s.max_input_psi if flagged.startswith("input") else s.prediction_psi
    assert value > 2 * DriftThresholds().input_psi


def test_window_rolls_off_old_rows(digits_artifact, digits_raw):
    raw, labels = digits_raw
    bright, _ = shifted(raw, labels, "brightness")
    # 400 bright rows, then 1,200 normal ones through a 512-row window: only normal rows remain
    s = _scores(digits_artifact, np.concatenate([bright[:400], raw[:1200]]), window_rows=512)
    assert 512 <= s.rows < 512 + 64 + 64
    assert s.drift == []


def test_image_rows_are_sampled_per_channel_without_bias(digits_artifact, digits_raw):
    s = _scores(digits_artifact, digits_raw[0][-400:], values_per_row=16)
    assert s.max_input_psi < 0.05


def test_old_manifest_without_bins_scores_predictions_only(digits_artifact, digits_raw):
    ref = digits_artifact.manifest.reference.model_copy(
        update={"input_bin_edges": None, "input_bin_freq": None}
    )
    manifest = digits_artifact.manifest.model_copy(update={"reference": ref})
    baseline = Baseline.from_artifact(SimpleNamespace(manifest=manifest))
    raw, labels = digits_raw
    x = normalized(digits_artifact, raw[-400:])
    logits = digits_artifact.build_model().eval()(torch.from_numpy(x)).detach().numpy()
    counts = count_batch(baseline, x, logits, None, np.random.default_rng(0))
    s = score(baseline, counts, DriftThresholds())
    assert s.input_psi == {}
    assert "retrain" in s.to_json()["note"]
    assert s.prediction_psi < 0.1
    assert s.drift == []


def test_reference_from_inputs_gives_a_baseline_to_an_artifact_without_one(tmp_path):
    from torchship.monitor.baseline import reference_from_inputs
    from torchship.testing import tiny_artifact

    art = tiny_artifact("mlp", shape=(6,))
    rng = np.random.default_rng(0)
    art = art.with_manifest(reference=reference_from_inputs(art, rng.standard_normal((800, 6)))).save(
        tmp_path / "a"
    )
    baseline = Baseline.from_artifact(art)
    assert baseline.groups == [f"feature{i}" for i in range(6)]
    x = rng.standard_normal((400, 6)).astype(np.float32)
    logits = art.build_model().eval()(torch.from_numpy(x)).detach().numpy()
    same = score(baseline, count_batch(baseline, x, logits, None, rng), DriftThresholds())
    moved = score(baseline, count_batch(baseline, x + 1.0, logits, None, rng), DriftThresholds())
    assert same.drift == []
    assert same.max_input_psi < 0.1
    assert {f"input_psi:feature{i}" for i in range(6)} <= set(moved.drift)


def test_live_monitor_samples_under_load_without_blocking(digits_artifact):
    from torchship.monitor import MonitorConfig
    from torchship.monitor.live import MonitorHub

    hub = MonitorHub(MonitorConfig(max_rows_per_s=64, queue_batches=4, update_interval_s=0.05))
    monitor, reason = hub.attach(digits_artifact)
    assert reason == ""
    x, logits = np.zeros((8, 1, 8, 8), np.float32), np.zeros((8, 10), np.float32)
    accepted = sum(monitor.offer(x, logits) for _ in range(200))  # far above 64 rows/s and 4 queued
    assert 1 <= accepted <= 8
    assert monitor.skipped_batches == 200 - accepted
    assert hub.wait_idle()
    assert monitor.scores().rows == 8 * accepted
    hub.close()


def test_manifests_without_the_bin_fields_still_load(digits_artifact):
    from torchship.artifact.manifest import parse_manifest

    raw = digits_artifact.manifest.to_json_dict()
    for key in ("input_bin_edges", "input_bin_freq"):
        del raw["reference"][key]
    assert parse_manifest(raw, "old manifest.json").reference.input_bin_edges is None
