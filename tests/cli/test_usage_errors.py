"""Usage errors (unknown option or command, bad value, missing argument): one line, exit 2, any typer."""

import pytest

from torchship import __version__


def usage_line(code, err):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--bogus"], ["--bogus", "Did you mean '--out'?", "'torchship train --help'"]),
        (["train", "--epochs", "abc"], ["Invalid value for '--epochs'", "'torchship train --help'"]),
        (["trian"], ["No such command 'trian'", "Did you mean 'train'?"]),
        (["inspect"], ["Missing argument", "'torchship inspect --help'"]),
        (["--bogus"], ["--bogus", "'torchship --help'"]),
        (["train", "--out"], ["'--out' requires an argument"]),
        (
            ["compress", "x", "prune", "--ratoi", "0.5"],
            ["--ratoi", "'--ratio'", "'torchship compress ARTIFACT prune --help'"],
        ),
    ],
)
def test_usage_error_is_one_line(run_cli, argv, expected):
    line = usage_line(*run_cli(*argv)[::2])
    for part in expected:
        assert part in line
    assert line.count("Did you mean") <= 1  # typer and click both suggest a command; say it once


def test_version(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0
    assert out.strip() == f"torchship {__version__}"


def test_missing_extra_names_it(run_cli, monkeypatch):
    import torchship.cli.main as cli_main

    def no_orjson(*argv, **kwargs):
        raise ModuleNotFoundError("No module named 'orjson'", name="orjson")

    monkeypatch.setattr(cli_main, "app", no_orjson)
    line = usage_line(*run_cli("serve", "x")[::2])
    assert "orjson is not installed" in line
    assert "torchship[serve]" in line
