"""``torchship serve`` argument handling (the server itself is tested elsewhere)."""

from __future__ import annotations


def test_help_ends_with_a_real_example(run_cli):
    code, out, _ = run_cli("serve", "--help")
    assert code == 0
    assert "torchship serve runs/digits-cnn/artifact" in out and "127.0.0.1" in out


def test_bad_config_is_one_line_with_the_key(run_cli, tmp_path, repo):
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("default: {max_batch_sise: 8}\n")
    code, _, err = run_cli("serve", str(repo), "--config", str(cfg))
    assert code == 2
    assert err.count("\n") == 1 and "default.max_batch_sise" in err


def test_missing_path_is_one_line(run_cli, tmp_path):
    code, _, err = run_cli("serve", str(tmp_path / "nowhere"))
    assert code == 2 and "not a directory" in err
