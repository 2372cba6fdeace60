"""``train --resume`` with a changed config names the differing keys, and does not dump the config."""


def test_resume_refusal_names_the_changed_keys_only(run_cli, tmp_path):
    argv = ["train", "--data", "digits", "--model", "mlp", "--set", "data.limit=100", "-o", tmp_path / "run"]
    code, _, err = run_cli(*argv, "--epochs", "1", "-q")
    assert code == 0, err
    code, _, err = run_cli(
        *argv, "--epochs", "2", "--set", "optim.lr=0.5", "--set", "train.batch_size=16", "--resume"
    )
    assert code == 2, err
    assert err.count("\n") == 1, err  # no resolved config printed before the refusal
    assert "optim.lr 0.003 -> 0.5" in err
    assert "train.batch_size 64 -> 16" in err
