"""Shared fixtures: tiny artifacts and a CLI runner that goes through torchship's real main()."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from torchship.testing import tiny_artifact


@pytest.fixture(autouse=True)
def _few_threads():
    # the test machine has 2 cores; keep torch from oversubscribing when pytest runs alongside others
    torch.set_num_threads(2)


@pytest.fixture
def tiny_cnn_artifact(tmp_path: Path):
    return tiny_artifact("cnn", path=tmp_path / "tiny-cnn")


@pytest.fixture
def run_cli(capsys):
    """Call torchship's main(argv) in-process; returns (exit_code, stdout, stderr)."""
    from torchship.cli.main import main

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def run_subprocess():
    """Run ``python -m torchship ARGS`` in a real subprocess (for console-script behaviour)."""

    def run(*argv: str, cwd: Path | None = None, timeout_s: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "torchship", *map(str, argv)],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout_s,
        )

    return run


@pytest.fixture(scope="session")
def trained_digits(tmp_path_factory):
    """The quickstart cnn trained on digits once per session (a few seconds on 2 cores)."""
    from rich.console import Console

    from torchship.config import validate_config
    from torchship.quickstart import QUICKSTART_CONFIG
    from torchship.train import TrainConfig, train

    out = tmp_path_factory.mktemp("digits-cnn")
    cfg = validate_config(TrainConfig, {**QUICKSTART_CONFIG, "out": str(out)})
    return train(cfg, console=Console(quiet=True))
