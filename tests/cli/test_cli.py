"""The CLI through torchship's real main(): exit codes, one-line errors, real output."""

import json

import numpy as np
import pytest
from PIL import Image

from torchship.testing import tiny_artifact


def one_line_error(code, err):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


def test_help_lists_commands_and_examples(run_cli):
    code, out, _ = run_cli("--help")
    assert code == 0
    for command in ("train", "validate", "inspect", "evaluate", "predict", "quickstart"):
        assert command in out
    code, out, _ = run_cli("train", "--help")
    assert code == 0
    assert "Example: torchship train" in out


def test_inspect_prints_manifest(run_cli, tiny_cnn_artifact):
    code, out, _ = run_cli("inspect", tiny_cnn_artifact.path)
    assert code == 0
    assert "tiny-cnn" in out
    assert "weights.safetensors" in out
    assert "cnn(" in out
    code, out, _ = run_cli("inspect", tiny_cnn_artifact.path, "--json")
    data = json.loads(out)
    assert data["architecture"]["name"] == "cnn"
    assert data["digest"].startswith("sha256:")


def test_inspect_tampered_artifact_is_one_line(run_cli, tiny_cnn_artifact):
    weights = tiny_cnn_artifact.path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"oops")
    line = one_line_error(*run_cli("inspect", tiny_cnn_artifact.path)[::2])
    assert "checksum mismatch" in line
    assert "re-run the stage" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "/nonexistent.yaml"], "config file /nonexistent.yaml does not exist"),
        (["train", "--data", "imagenet", "--epochs", "1"], "unknown dataset 'imagenet'"),
        (["train", "--model", "vgg", "--epochs", "1", "--set", "data.limit=50"], "unknown model 'vgg'"),
        (["train", "--set", "optim.lr=-1", "--set", "train.epoch=3"], "2 problems"),
        (["train", "--set", "nonsense"], "key.path=value"),
    ],
)
def test_bad_input_gets_one_line(run_cli, tmp_path, argv, expected):
    line = one_line_error(*run_cli(*argv, "--out", tmp_path / "run")[::2])
    assert expected in line


def test_validate_reports_all_problems(run_cli, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: {name: cnm}\ndata: {name: mnst}\noptim: {lr: 0.1}\n")
    line = one_line_error(*run_cli("validate", cfg)[::2])
    assert "2 problems" in line
    assert "unknown model 'cnm'" in line
    assert "unknown dataset 'mnst'" in line
    code, out, _ = run_cli("validate", "configs/digits-cnn.yaml", "--set", "optim.lr=1e-3")
    assert code == 0
    assert "is valid" in out
    assert "lr: 0.001" in out


def test_shipped_configs_are_valid(run_cli):
    from pathlib import Path

    configs = sorted(Path("configs").glob("*.yaml"))
    assert configs
    for cfg in configs:
        code, out, err = run_cli("validate", cfg)
        assert code == 0, (cfg, err)


def test_train_flags_only_and_evaluate_predict(run_cli, tmp_path):
    code, out, err = run_cli(
        "train",
        "--data",
        "digits",
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--out",
        tmp_path / "run",
        "--set",
        "data.limit=300",
        "-q",
    )
    assert code == 0, err
    art = tmp_path / "run" / "artifact"
    assert "artifact:" in out
    assert art.is_dir()

    code, out, err = run_cli("evaluate", art, "--json", tmp_path / "m.json")
    assert code == 0, err
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["samples"] == 60
    assert len(report["confusion_matrix"]) == 10
    assert "confusion matrix" in out

    from sklearn.datasets import load_digits

    digits = load_digits()
    image = (digits.images[0] / 16 * 255).astype(np.uint8)
    Image.fromarray(image, mode="L").save(tmp_path / "zero.png")
    np.save(tmp_path / "zero.npy", image.astype(np.float32))
    code, out, err = run_cli(
        "predict", art, tmp_path / "zero.png", tmp_path / "zero.npy", "--json", "--top-k", "2"
    )
    assert code == 0, err
    results = json.loads(out)
    assert [len(r["top"]) for r in results] == [2, 2]
    assert abs(sum(t["probability"] for t in results[0]["top"])) <= 1.0 + 1e-6

    line = one_line_error(*run_cli("predict", art, tmp_path / "missing.png")[::2])
    assert "missing.png does not exist" in line


def test_debug_shows_traceback(run_subprocess, tmp_path):
    proc = run_subprocess("inspect", tmp_path / "nope", "--debug")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    proc = run_subprocess("inspect", tmp_path / "nope")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_evaluate_with_a_mismatched_dataset(run_cli, tmp_path):
    art = tiny_artifact("cnn", path=tmp_path / "a")
    line = one_line_error(*run_cli("evaluate", art.path)[::2])
    assert "does not record its dataset" in line
    line = one_line_error(*run_cli("evaluate", art.path, "--data", "synthetic")[::2])
    assert "expects [1, 8, 8]" in line
