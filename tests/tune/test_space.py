import pytest

optuna = pytest.importorskip("optuna")

from torchship.tune import parse_space  # noqa: E402
from torchship.tune.config import TuneConfig, pruner_warmup  # noqa: E402
from torchship.tune.study import make_pruner  # noqa: E402


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


@pytest.mark.parametrize(
    ("setting", "schedule", "warmup_epochs", "epochs", "expected"),
    [
        ("auto", "onecycle", 0.0, 10, 3),  # the one-cycle ramp is 30 % of the epochs
        ("auto", "cosine", 1.0, 8, 1),
        ("auto", "cosine", 0.5, 8, 1),  # a partial warm-up epoch still ramps the whole epoch
        ("auto", "constant", 0.0, 8, 0),
        ("auto", "cosine", 5.0, 3, 2),  # the last epoch can always be judged
        (4, "onecycle", 0.0, 10, 4),  # an explicit setting wins
    ],
)
def test_pruner_warmup_waits_for_the_schedules_ramp(setting, schedule, warmup_epochs, epochs, expected):
    assert pruner_warmup(setting, schedule, warmup_epochs, epochs) == expected


@pytest.mark.parametrize(
    ("pruner", "attribute"), [("median", "_n_warmup_steps"), ("hyperband", "_min_resource")]
)
def test_the_pruner_judges_no_epoch_before_the_warmup_ends(pruner, attribute):
    made = make_pruner(TuneConfig(pruner=pruner), max_epochs=10, warmup=3)
    assert getattr(made, attribute) == 4  # epochs count from 1: epoch 4 is the first one judged


def test_a_pruner_warmup_without_a_pruner_is_reported():
    from torchship.errors import ConfigError
    from torchship.tune.config import check_tune

    base = {"name": "d", "model": {"name": "mlp"}, "data": {"name": "digits"}}
    tune = {"space": {"optim.lr": {"log_uniform": [1.0e-3, 0.3]}}, "pruner_warmup": 2}
    with pytest.raises(ConfigError, match="tune.pruner_warmup: there is no pruner to delay"):
        check_tune(base, tune, "config t.yaml")
