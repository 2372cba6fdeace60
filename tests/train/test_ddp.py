import json
import os
import subprocess
import sys

from torchship.artifact import Artifact


def test_ddp_two_gloo_processes_write_one_artifact(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torchship",
            "train",
            "--data",
            "digits",
            "--model",
            "mlp",
            "--epochs",
            "2",
            "--set",
            "data.limit=400",
            "--set",
            "train.batch_size=32",
            "--out",
            str(out),
            "--nproc-per-node",
            "2",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    art = Artifact.load(out / "artifact")
    assert art.manifest.metrics["val"]["accuracy"] > 0.3
    # each rank saw half the data: the logged throughput counts both ranks' samples
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert len(list(out.glob("artifact*"))) == 1
