"""A full or read-only disk: one line, exit 2, and no half-written temporary file left behind.

Tests run as root, which ignores chmod, so a full disk is simulated by making the write fail with
ENOSPC, and a read-only place by an output path under a regular file (no one can write there).
"""

import errno

import pytest

from torchship import output
from torchship.errors import OutputError
from torchship.testing import tiny_artifact


def _full_disk(monkeypatch, module, name):
    """Make ``module.name`` write half its output, then fail as a full disk does."""
    real = getattr(module, name)

    def half_then_full(*args, **kwargs):
        real(*args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", str(args[-1]) if args else None)

    monkeypatch.setattr(module, name, half_then_full)


def _half(path, data):
    with open(path, "wb") as fh:
        fh.write(data[:3])
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_write_atomic_leaves_no_temp_file_on_a_full_disk(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text("old")
    monkeypatch.setattr(output.Path, "write_bytes", _half)
    with pytest.raises(OutputError, match="No space left on device"):
        output.write_atomic(target, "new content")
    monkeypatch.undo()
    assert target.read_text() == "old"  # all or nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_artifact_save_on_a_full_disk_is_one_error_and_no_temp_file(tmp_path, monkeypatch):
    import safetensors.torch

    art = tiny_artifact("mlp")
    _full_disk(monkeypatch, safetensors.torch, "save_file")
    with pytest.raises(OutputError, match="No space left on device") as info:
        art.save(tmp_path / "out")
    assert "\n" not in str(info.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_train_into_a_path_under_a_file_is_one_line(run_cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run_cli(
        "train",
        "--data",
        "digits",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--set",
        "data.limit=100",
        "-q",
        "--out",
        blocker / "run",
    )
    assert code == 2, err
    assert err.count("\n") == 1
    assert "cannot write" in err
