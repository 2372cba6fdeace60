"""``torchship monitor check``: exit 0 on training-like data, 1 on drift, 2 with one line on bad data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from monitor_helpers import shifted


def _npz(tmp_path, unit, labels, name="new") -> str:
    """Digits in [0, 1] saved raw, as on disk (0..16): monitor check applies the manifest's scale."""
    path = tmp_path / f"{name}.npz"
    np.savez(path, x=unit * 16, y=labels)
    return f"npz:{path}"


def test_training_like_data_passes(run_cli, digits_artifact, digits_raw, tmp_path):
    raw, labels = digits_raw
    code, out, err = run_cli(
        "monitor",
        "check",
        digits_artifact.path,
        "--data",
        _npz(tmp_path, raw[-600:], labels[-600:]),
        "--json",
    )
    assert code == 0, err
    scores = json.loads(out)
    assert scores["status"] == "ok"
    assert scores["rows"] == 600
    assert scores["max_input_psi"] < 0.05
    assert scores["prediction_psi"] < 0.1


def test_own_validation_split_scores_zero_in_a_table(run_cli, digits_artifact):
    code, out, _ = run_cli("monitor", "check", digits_artifact.path, "--split", "val")
    assert code == 0
    assert "prediction PSI" in out
    assert "0.0000" in out


@pytest.mark.parametrize("kind", ["brightness", "noise", "imbalanced"])
def test_shifted_data_exits_1(run_cli, digits_artifact, digits_raw, tmp_path, kind):
    code, out, _ = run_cli(
        "monitor",
        "check",
        digits_artifact.path,
        "--data",
        _npz(tmp_path, *shifted(*digits_raw, kind)),
        "--json",
    )
    assert code == 1
    assert json.loads(out)["drift"]


def test_threshold_option_moves_the_verdict(run_cli, digits_artifact, digits_raw, tmp_path):
    data = _npz(tmp_path, *shifted(*digits_raw, "imbalanced"))
    code, out, _ = run_cli("monitor", "check", digits_artifact.path, "--data", data, "--threshold", "50")
    assert code == 0
    assert "DRIFT" not in out


def test_wrong_shape_is_one_line(run_cli, digits_artifact, tmp_path):
    data = _npz(tmp_path, np.zeros((20, 16, 16), np.float32), np.arange(20) % 2)
    code, out, err = run_cli("monitor", "check", digits_artifact.path, "--data", data)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "shape [1, 16, 16]" in err
    assert "expects [1, 8, 8]" in err
