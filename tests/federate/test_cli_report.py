"""``torchship federate`` from the command line, and its section of ``torchship report``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

CONFIG = """\
model: {name: mlp, kwargs: {hidden: [32]}}
data: {name: digits, val_fraction: 0.2}
optim: {name: adam, lr: 0.005}
schedule: {name: constant}
train: {batch_size: 32, threads: 1}
federate: {clients: 2, rounds: 2}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "fed.yaml"
    path.write_text(CONFIG)
    return path


def test_cli_runs_with_flags_over_the_yaml_and_the_report_shows_rounds_and_partitions(
    run_cli, config, tmp_path
):
    pytest.importorskip("matplotlib")
    from torchship.report import write_report

    out = tmp_path / "run"
    code, stdout, stderr = run_cli(
        "federate",
        config,
        "--clients",
        "3",
        "--partition",
        "dirichlet:0.5",
        "--strategy",
        "fedprox",
        "--baseline",
        "-o",
        out,
    )
    assert code == 0, stderr
    assert "round   2/2  clients 3/3" in stderr  # live progress, one line per round
    assert "federated (fedprox, 2 rounds)" in stdout
    assert "centralized" in stdout
    partitions = json.loads((out / "partitions.json").read_text())
    assert len(partitions["clients"]) == 3
    assert partitions["skew"] > 0.2

    page = write_report([out], tmp_path / "report.html").path.read_text(encoding="utf-8")
    body = re.search(r'<section id="federated">(.*?)</section>', page, flags=re.S).group(1)
    assert body.count("<svg") == 2  # accuracy per round, samples per client and class
    assert "Central training on the same data and epoch budget" in body
    assert "dirichlet:0.5" in body


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--partition", "dirichlet:x"], "unknown partition 'dirichlet:x'"),
        (
            ["--strategy", "fedsgd"],
            "strategy: Input should be 'fedavg', 'fedprox' or 'fedadam' (got 'fedsgd')",
        ),
        (["--partition", "by-file"], "partition by-file needs one data file per client"),
    ],
)
def test_bad_input_is_one_line_and_status_2(run_cli, config, tmp_path, args, message):
    code, _, stderr = run_cli("federate", config, *args, "-o", tmp_path / "run")
    assert code == 2
    assert message in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_a_report_without_a_federated_run_has_no_federated_section(tmp_path):
    pytest.importorskip("matplotlib")
    from torchship.report import write_report
    from torchship.testing import tiny_artifact

    tiny_artifact("mlp", path=tmp_path / "art")
    page = write_report([tmp_path / "art"], tmp_path / "report.html").path.read_text(encoding="utf-8")
    assert 'id="federated"' not in page
