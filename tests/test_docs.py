"""The README's ``## Use`` block runs as written, in order, on a tiny budget.

Every line of the block has one entry in ``PLAN``: ``run`` it with the extra arguments named
there (which only shrink the work: fewer epochs, shorter timing, fewer recipes); ``slow``: run
it in the ``-m slow`` test and check its ``--help`` in the default one (ONNX export and
int8 calibration cost 10-15 s each on 2 busy cores); ``help``: check only ``--help`` (it starts
a server or worker processes); or ``skip`` it, with the reason. A line added to the README
without an entry fails the test, so the block and the test stay in step.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EPOCHS_1 = ("--set", "train.epochs=1")
QUICK_OPTIMIZE = tuple(
    f"--set=timing.{k}" for k in ("warmup=1", "min_iterations=3", "min_time_s=0", "rounds=1")
)

# line of the block (comment stripped) -> ("run" | "slow", extra args) | ("help" | "skip", why)
PLAN: dict[str, tuple] = {
    "source .venv/bin/activate": ("skip", "a shell step; the test runs torchship in-process"),
    "torchship train --data digits --model cnn --epochs 5 --out runs/x": ("run", EPOCHS_1),
    "torchship train configs/digits-cnn.yaml --set optim.lr=1e-3": ("run", EPOCHS_1),
    "torchship validate configs/digits-cnn.yaml": ("run", ()),
    "torchship train configs/digits-cnn.yaml --set optim.lr=1e-3 --resume": (
        "run",
        ("--set", "train.epochs=2"),
    ),
    "torchship train configs/digits-cnn.yaml --nproc-per-node 2": (
        "help",
        "starts two torchrun workers; DDP is tested in tests/train",
    ),
    "torchship inspect runs/digits-cnn/artifact": ("run", ()),
    "torchship evaluate runs/digits-cnn/artifact": ("run", ()),
    "torchship predict runs/digits-cnn/artifact digit.png": ("run", ()),
    "torchship export runs/digits-cnn/artifact --format onnx,torchscript,triton": (
        "slow",
        ("--samples", "32"),
    ),
    "torchship bench runs/digits-cnn/artifact --runtime all --batch-sizes 1,8,32": (
        "help",
        "'all' compiles torch.compile and AOTInductor programs (minutes); see tests/bench",
    ),
    "torchship compress runs/digits-cnn/artifact prune --ratio 0.5 -o runs/pruned": ("run", ()),
    "torchship compress runs/digits-cnn/artifact quantize --mode static -o runs/int8": ("slow", ()),
    "torchship ensemble runs/x runs/pruned --mode mean -o runs/ab": ("run", ()),
    "torchship optimize runs/digits-cnn/artifact --max-accuracy-drop 0.01 -o runs/opt": (
        "slow",
        ("--recipe", "int8-dynamic", "--set", "runtimes=[eager]", *QUICK_OPTIMIZE),
    ),
    "torchship serve runs/digits-cnn/artifact": ("help", "starts a server; serving is tested in tests/serve"),
    "torchship monitor check runs/digits-cnn/artifact --data npz:new.npz": ("run", ()),
    "torchship report runs/x runs/pruned/artifact -o report.html": ("run", ()),
    "torchship tune configs/digits-tune.yaml -o runs/digits-tune": (
        "slow",
        ("--trials", "2", "--set", "train.epochs=1"),
    ),
    "torchship import model.pt2 -o runs/imported": (
        "help",
        "needs a model trained elsewhere; import is tested in tests/importer",
    ),
    "torchship keygen -o keys": ("run", ()),
    "torchship sign runs/digits-cnn/artifact --key keys/private.pem": ("run", ()),
    "torchship deploy kubernetes runs/digits-cnn/artifact -o deploy/digits": ("run", ()),
    "torchship federate configs/digits-mlp-federated.yaml --partition dirichlet:0.5 -o runs/fed": (
        "slow",
        ("--rounds", "1", "--clients", "2"),
    ),
}


def use_block() -> list[str]:
    """The command lines of the README's ``## Use`` bash block, comments stripped."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Use\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.strip()]


def test_every_line_of_the_use_block_has_a_plan():
    assert [line for line in use_block() if line not in PLAN] == []


def _inputs_the_block_names(cwd: Path) -> None:
    """digit.png and new.npz, which the block takes from the user: a real digit and raw digits (0..16)."""
    from PIL import Image

    from torchship.data.builtin import _bundled_digits

    shutil.copytree(ROOT / "configs", cwd / "configs")
    rows = _bundled_digits()
    Image.fromarray((rows[0, :64].reshape(8, 8) * 255 / 16).astype(np.uint8)).save(cwd / "digit.png")
    np.savez(cwd / "new.npz", x=rows[-300:, :64].reshape(-1, 8, 8), y=rows[-300:, 64].astype(np.int64))


def _run_block(run_cli, cwd: Path, slow: bool) -> None:
    _inputs_the_block_names(cwd)
    for line in use_block():
        mode, extra = PLAN[line]
        argv = shlex.split(line)[1:]
        if mode == "skip":
            continue
        if mode == "help" or (mode == "slow" and not slow):
            argv = [a for a in argv if not a.startswith(("runs/", "configs/"))]
            argv = argv[: next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))] + ["--help"]
            extra = ()
        code, out, err = run_cli(*argv, *extra)
        assert code == 0, f"{line}\n{out}\n{err}"
    # what the block promises about the layout: -o OUT puts the artifact in OUT/artifact
    for run in ("x", "digits-cnn", "pruned", "ab", *(("int8",) if slow else ())):
        assert (cwd / "runs" / run / "artifact" / "manifest.json").is_file(), run
    assert (cwd / "report.html").stat().st_size > 10_000


def test_the_use_block_runs_as_written(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _run_block(run_cli, tmp_path, slow=False)


@pytest.mark.slow
def test_the_whole_use_block_runs_as_written(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _run_block(run_cli, tmp_path, slow=True)
    picked = json.loads((tmp_path / "runs" / "opt" / "optimize.json").read_text())["picked"]
    assert (tmp_path / "runs" / "opt" / "artifact").is_dir() == (picked is not None)
