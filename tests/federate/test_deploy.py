"""Deployment: Flower's own SuperLink and two SuperNodes as processes on 127.0.0.1, each client
with its own data file, driven by ``torchship federate --superlink``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.federate.conftest import write_client_files

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
model: {name: mlp, kwargs: {hidden: [32]}}
data: {name: digits, val_fraction: 0.2}
optim: {name: adam, lr: 0.005}
schedule: {name: constant}
train: {batch_size: 32, threads: 1}
federate: {clients: 2, rounds: 1, partition: by-file, round_timeout_s: 240}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture
def flower(tmp_path: Path):
    """A SuperLink and two SuperNodes, each pointed at its own .npz; stopped by process group."""
    if not (BIN / "flower-superlink").exists():
        pytest.skip("flower-superlink is not installed")
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "FLWR_HOME": str(tmp_path / "flwr-home"),
        "OMP_NUM_THREADS": "1",
        # the SuperLink and SuperNodes start flower-superexec / flwr-clientapp by name
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    port = _free_port()
    procs = []

    def start(name: str, *args: str) -> None:
        log = (tmp_path / f"{name}.log").open("w")
        procs.append(
            subprocess.Popen(
                [str(BIN / args[0]), *args[1:]],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    start(
        "superlink",
        "flower-superlink",
        "--insecure",
        "--port",
        str(port),
        "--disable-runtime-dependency-installation",
    )
    try:
        _wait_for_port(port, 60)
        for i, data in enumerate(write_client_files(tmp_path, 2)):
            start(
                f"supernode-{i}",
                "flower-supernode",
                "--insecure",
                "--superlink",
                f"127.0.0.1:{port}",
                "--port",
                str(_free_port()),
                "--node-config",
                f"data-path='{data}' partition-id={i}",
            )
        yield f"127.0.0.1:{port}", env
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_server_and_two_clients_on_localhost_complete_a_run(tmp_path: Path, flower):
    superlink, env = flower
    config = tmp_path / "fed.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torchship",
            "federate",
            str(config),
            "--superlink",
            superlink,
            "-o",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1]
    assert len(rounds[0]["participants"]) == 2
    assert rounds[0]["samples"] == 1797
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["val"]["accuracy"] > 0.6
    assert (out / "artifact" / "manifest.json").is_file()
