"""``torchship serve`` argument handling (the server itself is tested elsewhere)."""

from __future__ import annotations

import pytest


def test_help_ends_with_a_real_example(run_cli):
    code, out, _ = run_cli("serve", "--help")
    assert code == 0
    assert "torchship serve runs/digits-cnn/artifact" in out
    assert "127.0.0.1" in out


def test_bad_config_is_one_line_with_the_key(run_cli, tmp_path, repo):
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("default: {max_batch_sise: 8}\n")
    code, _, err = run_cli("serve", str(repo), "--config", str(cfg))
    assert code == 2
    assert err.count("\n") == 1
    assert "default.max_batch_sise" in err


def test_missing_path_is_one_line(run_cli, tmp_path):
    code, _, err = run_cli("serve", str(tmp_path / "nowhere"))
    assert code == 2
    assert "not a directory" in err


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--max-batch-size", "0"], "--max-batch-size 0"),
        (["--instances", "100"], "--instances 100"),
        (["--threads", "0"], "--threads 0"),
        (["--log-level", "loud"], "'--log-level'"),
        (["--port", "99999"], "'--port'"),
        (["--max-connections", "0"], "'--max-connections'"),
    ],
)
def test_invalid_option_is_one_line_before_anything_starts(run_cli, monkeypatch, repo, option, expected):
    import torchship.serve

    def must_not_start(*args, **kwargs):
        raise AssertionError("the server started with an invalid option")

    monkeypatch.setattr(torchship.serve, "serve", must_not_start)
    code, _, err = run_cli("serve", str(repo), *option)
    assert code == 2, err
    assert err.count("\n") == 1
    assert expected in err


def test_max_connections_reaches_the_server_config(run_cli, monkeypatch, repo):
    import torchship.serve

    seen = {}
    monkeypatch.setattr(torchship.serve, "serve", lambda path, **kwargs: seen.update(kwargs))
    code, _, err = run_cli("serve", str(repo), "--max-connections", "24", "--workers", "1")
    assert code == 0, err
    assert seen["config"].max_connections == 24
