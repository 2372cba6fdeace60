import pytest

optuna = pytest.importorskip("optuna")

from torchship.tune import parse_space  # noqa: E402


def test_every_kind_of_param_suggests_values_inside_its_space():
    params, problems = parse_space(
        {
            "optim.lr": {"log_uniform": [1.0e-4, 1.0e-1]},
            "model.dropout": {"uniform": [0.0, 0.5], "step": 0.1},
            "train.batch_size": {"int": [16, 128], "step": 16},
            "model.kwargs.hidden": {"int": [8, 512], "log": True},
            "model.kwargs.channels": {"choice": [[16, 32], [32, 64]]},
            "optim.name": {"choice": ["sgd", "adamw"]},
        }
    )
    assert problems == []
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        values = {p.key: p.suggest(trial) for p in params}
        assert 1.0e-4 <= values["optim.lr"] <= 1.0e-1
        assert round(values["model.dropout"] * 10) == pytest.approx(values["model.dropout"] * 10)
        assert values["train.batch_size"] % 16 == 0
        assert 8 <= values["model.kwargs.hidden"] <= 512
        assert values["model.kwargs.channels"] in ([16, 32], [32, 64])
        assert values["optim.name"] in ("sgd", "adamw")


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"uniform": [1.0, 1.0]}, "empty range [1.0, 1.0]"),
        ({"log_uniform": [0.0, 1.0]}, "a log range must be positive"),
        ({"int": [1, 8], "step": 16}, "step 16 is wider than the range"),
        ({"int": [1.5, 8]}, "int needs [low, high], two integers"),
        ({"choice": []}, "choice needs a non-empty list"),
        ({"choice": ["a", "a"]}, "choice lists a value twice"),
        ({"uniform": [0, 1], "choice": [1]}, "names 2 (uniform, choice)"),
        ({"uniform": [0, 1], "log": True}, "unknown option 'log' for uniform"),
        ("fast", "must be a mapping"),
    ],
)
def test_bad_params_are_named_with_their_key(spec, problem):
    params, problems = parse_space({"optim.lr": spec})
    assert params == []
    assert len(problems) == 1
    assert problems[0].startswith("tune.space.optim.lr: ")
    assert problem in problems[0]


def test_the_config_as_written_is_where_a_new_study_starts(tmp_path):
    import yaml

    from torchship.tune import load_tune

    config = tmp_path / "start.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"name": "mlp", "kwargs": {"hidden": [32]}},
                "optim": {"name": "adamw", "lr": 3.0e-3},
                "train": {"batch_size": 64},
                "tune": {
                    "space": {
                        "optim.lr": {"log_uniform": [1.0e-4, 1.0e-1]},
                        "optim.name": {"choice": ["sgd", "adamw"]},
                        "model.kwargs.hidden": {"choice": [[16], [32]]},
                        "train.batch_size": {"int": [16, 48], "step": 16},  # 64 is outside: Optuna samples it
                    }
                },
            }
        )
    )
    start = load_tune(config).start_values()
    assert start == {"optim.lr": 3.0e-3, "optim.name": "adamw", "model.kwargs.hidden": "[32]"}
