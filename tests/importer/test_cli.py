"""`torchship import` from the command line: weights formats, programs, and one-line refusals."""

from __future__ import annotations

import json

import torch
from byo_nets import TwoHeads
from safetensors.torch import save_file

from torchship.artifact import Artifact

CLASS = "byo_nets:two_heads"


def _weights(tmp_path):
    torch.manual_seed(0)
    net = TwoHeads()
    return net, net.state_dict()


def test_import_lightning_ckpt_with_model_prefix(tmp_path, run_cli):
    net, state = _weights(tmp_path)
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "last.ckpt"
    )
    code, out, err = run_cli(
        "import",
        tmp_path / "last.ckpt",
        "--class",
        CLASS,
        "--allow-import",
        CLASS,
        "--kwargs",
        '{"features": 6}',
        "--input",
        "x:float32:batch,6",
        "--task",
        "regression",
        "--outputs",
        "mean,scale",
        "-o",
        tmp_path / "run",
        "--json",
    )
    assert code == 0, err
    shown = json.loads(out)
    assert shown["artifact"] == str(tmp_path / "run" / "artifact")
    assert [o["name"] for o in shown["signature"]["outputs"]] == ["mean", "scale"]
    art = Artifact.load(tmp_path / "run" / "artifact")
    x = torch.randn(3, 6)
    with torch.no_grad():
        want = net(x)[0]
        got = art.build_model([CLASS])(x)[0]
    torch.testing.assert_close(got, want)


def test_import_safetensors_prints_the_signature(tmp_path, run_cli):
    _, state = _weights(tmp_path)
    save_file(state, str(tmp_path / "w.safetensors"))
    code, out, _ = run_cli(
        "import",
        tmp_path / "w.safetensors",
        "--class",
        CLASS,
        "--allow-import",
        CLASS,
        "--input",
        "x:float32:batch,6",
        "--task",
        "regression",
        "-o",
        tmp_path / "run",
    )
    assert code == 0
    assert "input  x               float32[batch, 6]" in out
    assert "output output_1        float32[batch]" in out


def test_import_refusals_are_one_line(tmp_path, run_cli):
    _, state = _weights(tmp_path)
    torch.save(state, tmp_path / "w.pt")
    cases = [
        (["--input", "x:float32:batch,6"], "holds weights only"),
        (["--class", CLASS, "--input", "x:float32:batch,6"], "was not allowed"),
        (["--class", CLASS, "--allow-import", CLASS], "--input NAME:DTYPE:SHAPE"),
        (["--class", CLASS, "--allow-import", CLASS, "--input", "x:complex:batch,6"], "unknown dtype"),
        (
            ["--class", CLASS, "--allow-import", CLASS, "--input", "x:float32:batch,6", "--task", "ranking"],
            "unknown task",
        ),
    ]
    for extra, message in cases:
        code, _, err = run_cli("import", tmp_path / "w.pt", "-o", tmp_path / "run", *extra)
        assert code == 2, (extra, err)
        assert message in err
        assert len(err.strip().splitlines()) == 1, err
    torch.save({"net": TwoHeads()}, tmp_path / "pickled.pt")
    code, _, err = run_cli(
        "import",
        tmp_path / "pickled.pt",
        "--class",
        CLASS,
        "--allow-import",
        CLASS,
        "--input",
        "x:float32:batch,6",
        "-o",
        tmp_path / "run",
    )
    assert code == 2
    assert "not a plain weights file" in err
