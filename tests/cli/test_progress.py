"""Long steps show progress on stderr; a log (no TTY) gets short lines and no blank line per epoch."""

import io

from rich.console import Console

from torchship.testing import tiny_artifact
from torchship.train.progress import EpochProgress


def test_epoch_bar_leaves_nothing_in_a_log():
    log = io.StringIO()
    bar = EpochProgress(Console(file=log, force_terminal=False), enabled=True)
    for epoch in (1, 2):
        bar.start(epoch, 2, steps=10)
        bar.update(5, lambda: "loss 1.0")
        bar.stop()
    assert log.getvalue() == ""  # was one empty line per epoch


def test_export_reports_each_step_as_a_short_line(run_cli, tmp_path):
    art = tiny_artifact("mlp", path=tmp_path / "art")
    code, _, err = run_cli("export", art.path, "--format", "torchscript", "-o", tmp_path / "out")
    assert code == 0, err
    lines = err.splitlines()
    assert "" not in lines
    assert any("eager reference on" in line for line in lines)
    assert any("torchscript: exporting and verifying" in line for line in lines)


def test_evaluate_spins_on_a_terminal_and_keeps_a_log_to_the_error(run_cli, tmp_path, monkeypatch):
    from torchship.cli import _common

    art = tiny_artifact("cnn", path=tmp_path / "art")
    shown = []

    class Status:
        def __init__(self, message):
            shown.append(message)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, message):
            shown.append(message)

    monkeypatch.setattr(type(_common.err), "is_terminal", property(lambda self: True))
    monkeypatch.setattr(_common.err, "status", Status)
    code, _, err = run_cli("evaluate", art.path, "--data", "digits")
    assert code == 0, err
    assert shown == ["evaluating tiny-cnn on digits (val split, eager)"]
    monkeypatch.undo()
    code, _, err = run_cli("evaluate", art.path)  # in a log: the bad input alone, on one line
    assert code == 2
    assert err.count("\n") == 1
