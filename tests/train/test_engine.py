import json
import textwrap

import pytest
import torch
from rich.console import Console

from torchship.artifact import Artifact
from torchship.config import validate_config
from torchship.errors import ConfigError, ModelError, TrainingError
from torchship.train import Callback, TrainConfig, train

QUIET = Console(quiet=True)


def config(tmp_path, **sections):
    base = {
        "out": str(tmp_path / "run"),
        "model": {"name": "mlp", "kwargs": {"hidden": [32]}},
        "data": {"name": "digits", "limit": 400},
        "optim": {"name": "sgd", "lr": 0.05},
        "schedule": {"name": "constant"},
        "train": {"epochs": 2, "batch_size": 64, "progress": False},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return validate_config(TrainConfig, base)


def test_cnn_on_digits_reaches_97_percent(trained_digits):
    assert trained_digits.manifest.metrics["val"]["accuracy"] >= 0.97
    m = trained_digits.manifest
    assert m.architecture.name == "cnn"
    assert m.input.shape == [1, 8, 8]
    assert m.labels == [str(i) for i in range(10)]
    assert m.lineage.op == "train"
    assert m.lineage.params["optim"]["name"] == "adamw"
    assert m.reference is not None
    assert len(m.reference.class_freq) == 10
    assert len(m.reference.prediction_freq) == 10
    assert len(m.curves) >= 1
    assert "val.accuracy" in m.curves[0]
    assert {"val", "train"} <= set(m.metrics)
    assert {"accuracy", "f1_macro", "auroc", "loss"} <= set(m.metrics["val"])
    evaluation = json.loads((trained_digits.path / "evaluation.json").read_text())
    matrix = evaluation["val"]["matrix"]
    assert sum(map(sum, matrix)) == m.data["sizes"]["val"]
    run_dir = trained_digits.path.parent
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    assert len(lines) == len(m.curves)
    assert json.loads((run_dir / "summary.json").read_text())["artifact"] == str(trained_digits.path)
    Artifact.load(trained_digits.path)  # checksums hold


class StopAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, epoch, record):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    sections = {
        "model": {"name": "mlp", "kwargs": {"hidden": [32]}, "dropout": 0.2},
        "data": {"name": "digits", "limit": 400, "augment": {"noise_std": 0.1}},
        "optim": {"name": "adamw", "lr": 0.01},
        "schedule": {"name": "cosine", "warmup_epochs": 1},
        "train": {"epochs": 4, "batch_size": 32, "progress": False},
    }
    whole = train(config(tmp_path / "a", **sections), console=QUIET)
    cfg = config(tmp_path / "b", **sections)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[StopAfter(2)], console=QUIET)
    assert not (tmp_path / "b" / "run" / "artifact").exists()
    resumed = train(cfg, resume=True, console=QUIET)
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert [r["epoch"] for r in resumed.manifest.curves] == [1, 2, 3, 4]


def test_resume_refuses_a_different_config(tmp_path):
    train(config(tmp_path), console=QUIET)
    with pytest.raises(TrainingError, match="different config.*optim.lr"):
        train(config(tmp_path, optim={"lr": 0.5}), resume=True, console=QUIET)
    more = train(config(tmp_path, train={"epochs": 3}), resume=True, console=QUIET)
    assert len(more.manifest.curves) == 3


def test_resume_without_checkpoint(tmp_path):
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(config(tmp_path), resume=True, console=QUIET)


@pytest.fixture
def nan_model(tmp_path, monkeypatch):
    (tmp_path / "nanmod.py").write_text(
        textwrap.dedent("""
        import torch
        class BlowsUp(torch.nn.Module):
            calls = 0
            def __init__(self, num_classes=10):
                super().__init__()
                self.fc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, num_classes))
            def forward(self, x):
                out = self.fc(x)
                if self.training:
                    BlowsUp.calls += 1
                    if BlowsUp.calls > 8:
                        out = out * float("nan")
                return out
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "nanmod:BlowsUp"


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, nan_model):
    cfg = config(tmp_path, model={"import": nan_model, "kwargs": {}}, train={"epochs": 3, "batch_size": 64})
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 2 step 4.*last good checkpoint"):
        train(cfg, allow_import=[nan_model], console=QUIET)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_bring_your_own_model_needs_permission(tmp_path, nan_model):
    with pytest.raises(ModelError, match="--allow-import nanmod:BlowsUp"):
        train(config(tmp_path, model={"import": nan_model}), console=QUIET)


def test_model_that_does_not_fit_the_data(tmp_path):
    cfg = config(
        tmp_path, model={"name": "cnn"}, data={"name": "synthetic", "synthetic": {"shape": [16], "size": 64}}
    )
    with pytest.raises(ModelError, match="needs image input"):
        train(cfg, console=QUIET)
    cfg = config(tmp_path, model={"name": "mlp", "kwargs": {"in_channels": 3}})
    with pytest.raises(ModelError, match=r"does not accept the data's inputs of shape \[1, 8, 8\]"):
        train(cfg, console=QUIET)


def test_early_stopping_and_best_checkpoint(tmp_path):
    cfg = config(
        tmp_path,
        optim={"name": "sgd", "lr": 1e-7},  # learns nothing, so the metric never improves
        train={"epochs": 10, "early_stop": {"metric": "val.loss", "patience": 2, "min_delta": 0.01}},
    )
    art = train(cfg, console=QUIET)
    assert len(art.manifest.curves) == 3


def test_gradient_accumulation_equals_the_large_batch(tmp_path):
    # 400 samples, 20 % val -> 320 train: five batches of 64 or ten of 32
    big = train(config(tmp_path / "a", train={"batch_size": 64, "epochs": 1}), console=QUIET)
    acc = train(config(tmp_path / "b", train={"batch_size": 32, "accumulate": 2, "epochs": 1}), console=QUIET)
    for key, value in big.state_dict().items():
        torch.testing.assert_close(acc.state_dict()[key], value, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("optim", ["sgd", "adam", "adamw", "adagrad", "rmsprop"])
def test_every_optimizer_learns(tmp_path, optim):
    lr = {"sgd": 0.1, "adagrad": 0.05}.get(optim, 3e-3)
    art = train(
        config(tmp_path, optim={"name": optim, "lr": lr, "nesterov": optim == "sgd"}, train={"epochs": 3}),
        console=QUIET,
    )
    assert art.manifest.metrics["val"]["accuracy"] > 0.5


def test_options_bf16_l1_smoothing_clip_tensorboard(tmp_path):
    cfg = config(
        tmp_path,
        optim={"name": "adam", "lr": 3e-3},
        train={"bf16": True, "l1": 1e-5, "label_smoothing": 0.1, "grad_clip": 1.0, "tensorboard": True},
    )
    art = train(cfg, console=QUIET)
    assert art.manifest.metrics["val"]["accuracy"] > 0.3
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_unknown_metric_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train.best_metric.*unknown metric 'val.acc'"):
        config(tmp_path, train={"best_metric": "val.acc"})
