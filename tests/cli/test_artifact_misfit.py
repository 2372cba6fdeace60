"""Artifacts that pass their checksums but do not fit: one line and exit 2 in every command."""

import json
import shutil

import numpy as np
import pytest
import torch

from torchship.artifact import Artifact, Manifest
from torchship.testing import tiny_artifact


def _first_input(data):
    """The manifest's (schema 2) first signature input, where shape and preprocessing live."""
    return data["signature"]["inputs"][0]


def _resaved(base, path, manifest=None, state=None, input_shape=None):
    """The tiny cnn saved again with fresh checksums after an edit to its manifest or weights."""
    data = base.manifest.to_json_dict()
    for key, value in (manifest or {}).items():
        data[key] = {**data[key], **value}
    if input_shape is not None:
        _first_input(data)["shape"] = ["batch", *input_shape]
    Artifact(Manifest.model_validate(data), state or base.state_dict(), base.path).save(path)
    return path


def _edited_json(base, path, edit):
    """The tiny cnn copied with manifest.json edited as text (what a validator would refuse)."""
    shutil.copytree(base.path, path)
    edit(path / "manifest.json")
    return path


def _set_input(**values):
    def edit(file):
        data = json.loads(file.read_text())
        _first_input(data)["preprocessing"].update(values)
        file.write_text(json.dumps(data))  # json writes NaN as the bare token NaN

    return edit


def _nest(file, depth=100_000):
    text = file.read_text().rstrip().rstrip("}")
    file.write_text(text + ', "data": ' + '{"a":' * depth + "1" + "}" * depth + "}")


def _kwargs(**values):
    def make(base, path):
        kwargs = {**base.manifest.architecture.kwargs, **values}
        return _resaved(base, path, {"architecture": {"kwargs": kwargs}})

    return make


MISFITS = {
    "weights of another shape": (_kwargs(hidden=64), "classifier.1.weight is [128, 256]"),
    "kwargs out of range": (_kwargs(channels=[-4, 8]), "negative dimension"),
    "kwargs too large to allocate": (_kwargs(hidden=10**12), "needs [1000000000000, 256]"),
    "input shape the model rejects": (
        lambda b, p: _resaved(b, p, input_shape=[1, 3, 3]),
        "rejects its manifest's input shape [1, 3, 3]",
    ),
    "int8 where floats belong": (
        lambda b, p: _resaved(b, p, state={k: v.to(torch.int8) for k, v in b.state_dict().items()}),
        "is torch.int8 in weights.safetensors",
    ),
    "scale NaN": (lambda b, p: _edited_json(b, p, _set_input(scale=float("nan"))), "must be finite"),
    "std zero": (lambda b, p: _edited_json(b, p, _set_input(std=[0.0])), "must not be zero"),
    "100k-deep manifest": (lambda b, p: _edited_json(b, p, _nest), "manifest.json is not valid JSON"),
}


@pytest.fixture
def npy(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((8, 8), dtype=np.float32))
    return path


@pytest.mark.parametrize("misfit", MISFITS)
def test_misfit_artifact_is_one_line_in_inspect_and_predict(run_cli, tmp_path, npy, misfit):
    make, expected = MISFITS[misfit]
    art = make(tiny_artifact("cnn", path=tmp_path / "base"), tmp_path / "bad")
    for argv in (["inspect", art], ["predict", art, npy, "--json"]):
        code, out, err = run_cli(*argv)
        assert code == 2, (argv, err)
        assert "Traceback" not in err
        assert err.count("\n") == 1, err
        assert expected in err
        assert out == ""


def test_misfit_artifact_is_one_line_in_evaluate_and_serve(run_cli, tmp_path):
    make, expected = MISFITS["weights of another shape"]
    art = make(tiny_artifact("cnn", path=tmp_path / "base"), tmp_path / "bad")
    for argv in (["evaluate", art, "--data", "digits"], ["serve", art, "--port", "1"]):
        code, _, err = run_cli(*argv)
        assert code == 2, (argv, err)
        assert err.count("\n") == 1, err
        assert expected in err


def test_predict_json_never_prints_nan(run_cli, tmp_path, npy):
    base = tiny_artifact("cnn", path=tmp_path / "base")
    state = {k: torch.full_like(v, float("nan")) for k, v in base.state_dict().items()}
    art = _resaved(base, tmp_path / "nan-weights", state=state)
    code, out, err = run_cli("predict", art, npy, "--json")
    assert code == 2, err
    assert out == ""
    assert "not finite" in err
