"""``evaluate`` and ``predict`` for models with named inputs: a file of named arrays, or one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from byo_nets import regression_artifact


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    root = tmp_path_factory.mktemp("reg-eval")
    net, art = regression_artifact(root / "reg" / "artifact")
    x = np.random.default_rng(0).standard_normal((20, 6)).astype(np.float32)
    with torch.no_grad():
        mean, scale = (t.numpy() for t in net(torch.from_numpy(x)))
    np.savez(root / "labelled.npz", input=x, mean=mean + 0.5, scale=scale)
    np.savez(root / "inputs.npz", input=x)
    return art.path, root


def test_regression_without_a_dataset_is_refused_in_one_line(reg, run_cli):
    path, _ = reg
    code, _, err = run_cli("evaluate", path)
    assert code == 2
    assert "records no dataset" in err
    assert "--inputs FILE.npz holding input, mean (targets), scale (targets)" in err
    assert "Traceback" not in err


def test_regression_is_evaluated_with_mse_and_mae_per_output(reg, run_cli, tmp_path):
    path, root = reg
    code, out, err = run_cli(
        "evaluate", path, "--inputs", root / "labelled.npz", "--json", tmp_path / "m.json"
    )
    assert code == 0, err
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert metrics["mean"]["mse"] == pytest.approx(0.25, abs=1e-5)
    assert metrics["mean"]["mae"] == pytest.approx(0.5, abs=1e-5)
    assert metrics["scale"]["mse"] == pytest.approx(0.0, abs=1e-9)
    assert "MSE" in out
    code, _, err = run_cli("evaluate", path, "--inputs", root / "inputs.npz")
    assert code == 2
    assert "no targets for reg's outputs (mean, scale)" in err


def test_predict_named_inputs_prints_every_output_per_row(reg, run_cli, tmp_path):
    path, root = reg
    code, out, err = run_cli("predict", path, "--inputs", root / "inputs.npz", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 20
    assert set(rows[0]["outputs"]) == {"mean", "scale"}
    (tmp_path / "one.json").write_text(json.dumps({"input": [[0.0] * 6]}))
    code, out, _ = run_cli("predict", path, "--inputs", tmp_path / "one.json", "--json")
    assert code == 0
    assert len(json.loads(out)) == 1
    np.save(tmp_path / "one.npy", np.zeros(6, np.float32))
    code, _, err = run_cli("predict", path, tmp_path / "one.npy")
    assert code == 2
    assert "is a regression model" in err
    assert "--inputs" in err


def test_bert_predicts_top_labels_and_evaluates_against_labels(bert_artifact, tmp_path, run_cli):
    ids = np.random.default_rng(0).integers(0, 1000, size=(10, 12))
    labels = np.arange(10) % 3
    np.savez(tmp_path / "b.npz", input_ids=ids, attention_mask=np.ones_like(ids), labels=labels)
    code, out, err = run_cli(
        "predict", bert_artifact, "--inputs", tmp_path / "b.npz", "--top-k", "2", "--json"
    )
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 10
    assert {t["label"] for t in rows[0]["top"]} <= {"neg", "neutral", "pos"}
    code, out, err = run_cli(
        "evaluate", bert_artifact, "--inputs", tmp_path / "b.npz", "--json", tmp_path / "e.json"
    )
    assert code == 0, err
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["samples"] == 10
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0
    assert sum(map(sum, result["confusion_matrix"])) == 10
    code, _, err = run_cli("predict", bert_artifact, tmp_path / "b.npz")
    assert code == 2
    assert "takes named inputs" in err
