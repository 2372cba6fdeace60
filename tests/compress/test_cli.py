"""``torchship compress`` and ``torchship ensemble`` through torchship's real main()."""

import json

import pytest

from torchship.testing import tiny_artifact

from .conftest import checksums


def one_line_error(code, err):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["compress", "--help"],
        ["compress", "ART", "prune", "--help"],
        ["compress", "ART", "fuse", "--help"],
        ["compress", "ART", "distill", "--help"],
        ["compress", "ART", "quantize", "--help"],
        ["ensemble", "--help"],
        ["optimize", "--help"],
    ],
)
def test_every_help_ends_with_an_example(run_cli, argv):
    code, out, _ = run_cli(*argv)
    assert code == 0
    tail = " ".join(line.strip() for line in out.strip().splitlines()[-4:])
    assert "Example: torchship " in tail


def test_every_registered_method_has_a_command_and_a_default_config(run_cli):
    from torchship.compress import methods

    names = methods.names()
    assert {"distill", "fuse", "prune", "quantize"} <= set(names)
    for name in names:
        entry = methods.get(name)
        entry.config()  # every setting has a default
        assert entry.summary
        assert not entry.summary.startswith(name)  # the docstring's first line, not the name as a fallback
        code, out, _ = run_cli("compress", "ART", name, "--help")
        assert code == 0, name
        assert "Example: torchship compress" in " ".join(out.split()), name


def test_bad_input_gets_one_line_and_leaves_the_parent_alone(run_cli, tmp_path):
    parent = tiny_artifact("mlp", path=tmp_path / "parent")
    before = checksums(parent.path)
    line = one_line_error(*run_cli("compress", parent.path, "prunee", "-o", tmp_path / "x")[::2])
    assert "unknown compression method 'prunee'; choose one of: distill, fuse, prune, quantize" in line
    line = one_line_error(
        *run_cli("compress", parent.path, "prune", "--sparsity", "1.5", "-o", tmp_path / "x")[::2]
    )
    assert "ratio" in line
    assert "less than 1" in line
    other = tiny_artifact("mlp", num_classes=3, path=tmp_path / "other")
    line = one_line_error(
        *run_cli("ensemble", parent.path, other.path, "--data", "digits", "-o", tmp_path / "x")[::2]
    )
    assert "predict different labels" in line
    assert checksums(parent.path) == before
    assert not (tmp_path / "x").exists()


def test_out_is_a_run_directory_and_a_run_directory_stands_for_its_artifact(run_cli, tmp_path):
    tiny_artifact("mlp", path=tmp_path / "run" / "artifact")  # laid out as train -o run writes it
    prune = ("prune", "--ratio", "0.5", "--data", "digits", "--set", "data.limit=200")
    line = one_line_error(*run_cli("compress", tmp_path / "run", *prune, "-o", tmp_path / "run")[::2])
    assert "inside the parent artifact" in line
    code, _, err = run_cli("compress", tmp_path / "run", *prune, "-o", tmp_path / "pruned")
    assert code == 0, err
    assert (tmp_path / "pruned" / "artifact" / "manifest.json").is_file(), "the artifact is in OUT/artifact"
    code, out, err = run_cli("inspect", tmp_path / "pruned", "--json")
    assert code == 0, err
    assert json.loads(out)["lineage"]["op"] == "prune"


def test_prune_prints_parent_versus_child(run_cli, tmp_path):
    parent = tiny_artifact("cnn", channels=[8, 16], hidden=32, path=tmp_path / "parent")
    code, out, err = run_cli(
        "compress",
        parent.path,
        "prune",
        "--ratio",
        "0.5",
        "--data",
        "digits",
        "--set",
        "data.limit=200",
        "-o",
        tmp_path / "pruned",
    )
    assert code == 0, err
    for row in ("parameters", "FLOPs", "weights size", "val accuracy", "artifact:"):
        assert row in out
    code, out, _ = run_cli(
        "compress", parent.path, "fuse", "-o", tmp_path / "fused", "--data", "digits", "--json"
    )
    assert code == 2  # a cnn without batch norm has nothing to fold
    code, out, err = run_cli(
        "compress",
        parent.path,
        "prune",
        "--kind",
        "unstructured",
        "--ratio",
        "0.5",
        "--data",
        "digits",
        "--set",
        "data.limit=200",
        "--json",
        "-o",
        tmp_path / "sparse",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["op"] == "prune"
    assert result["params"]["report"]["sparsity"]["classifier.1"] == pytest.approx(0.5, abs=0.01)
