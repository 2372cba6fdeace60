import csv
import json
import shutil

import pytest
import yaml

optuna = pytest.importorskip("optuna")

from torchship.artifact import Artifact  # noqa: E402
from torchship.tune import load_tune, run_search, tune  # noqa: E402
from torchship.tune.study import open_study  # noqa: E402

BASE = {
    "name": "digits-tiny",
    "model": {"name": "mlp", "kwargs": {"hidden": [16]}},
    "data": {"name": "digits", "limit": 300},
    "optim": {"name": "sgd", "lr": 0.05},
    "schedule": {"name": "constant"},
    "train": {"epochs": 1, "batch_size": 64},
}
SPACE = {"optim.lr": {"log_uniform": [1.0e-3, 0.3]}, "optim.name": {"choice": ["sgd", "adamw"]}}


def write_config(path, tune_block=None, **sections):
    data = {**BASE, **sections, "tune": {"space": SPACE, "seed": 7, **(tune_block or {})}}
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    config = write_config(root / "tune.yaml")
    return config, tune(config, root / "out", trials=3)


def test_best_artifact_carries_the_best_trials_params(searched):
    _, result = searched
    assert [r["state"] for r in result.rows] == ["COMPLETE"] * 3
    best = max(result.rows, key=lambda r: r["values"]["val.accuracy"])
    assert result.best_trial == best["number"]
    assert best["best"]
    artifact = Artifact.load(result.out / "artifact")
    lineage = artifact.manifest.lineage
    assert lineage.op == "tune"
    assert lineage.params["study"] == "digits-tiny"
    assert lineage.params["trial"] == best["number"]
    assert lineage.params["params"] == best["params"]
    assert lineage.params["config"]["optim"]["lr"] == best["params"]["optim.lr"]
    assert artifact.manifest.metrics["val"]["accuracy"] == pytest.approx(best["values"]["val.accuracy"])
    with (result.out / "trials.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [int(r["number"]) for r in table] == [0, 1, 2]
    assert {"val.accuracy", "optim.lr", "optim.name", "epochs", "note"} <= set(table[0])
    assert json.loads((result.out / "trials.json").read_text()) == result.rows
    summary = json.loads((result.out / "tune.json").read_text())
    assert summary["kind"] == "torchship.tune"
    assert summary["best_trial"] == best["number"]


def test_same_seed_samples_the_same_params(searched, tmp_path):
    config, first = searched
    again = tune(config, tmp_path / "again", trials=2)
    assert [r["params"] for r in again.rows] == [r["params"] for r in first.rows[:2]]


def test_a_killed_study_resumes_without_repeating_trial_numbers(searched, tmp_path):
    config, first = searched
    out = tmp_path / "resumed"
    shutil.copytree(first.out, out)
    spec = load_tune(config)
    # a process killed mid-trial leaves a RUNNING trial behind
    open_study("digits-tiny", f"sqlite:///{out / 'study.db'}", spec.tune, 1).ask()
    result = run_search(spec, out, trials=4)
    numbers = [r["number"] for r in result.rows]
    assert numbers == sorted(set(numbers)) == [0, 1, 2, 3, 4]
    assert result.ran == 1
    assert [r["params"] for r in result.rows[:3]] == [r["params"] for r in first.rows]
    assert sum(r["state"] == "COMPLETE" for r in result.rows) == 4


def test_pruner_stops_a_trial_with_a_bad_metric(tmp_path):
    config = write_config(
        tmp_path / "prune.yaml",
        {"pruner": "median", "startup_trials": 1},
        train={"epochs": 3, "batch_size": 64},
    )
    spec = load_tune(config)
    (tmp_path / "out").mkdir()
    study = open_study("digits-tiny", f"sqlite:///{tmp_path / 'out' / 'study.db'}", spec.tune, 3)
    study.enqueue_trial({"optim.lr": 0.1, "optim.name": "adamw"})  # learns: a good median
    study.enqueue_trial({"optim.lr": 0.001, "optim.name": "sgd"})  # barely moves: below it
    result = run_search(spec, tmp_path / "out", trials=2)
    good, bad = result.rows
    assert good["state"] == "COMPLETE"
    assert good["epochs"] == 3
    assert bad["state"] == "PRUNED"
    assert bad["epochs"] < 3
    assert bad["note"].startswith("pruned after epoch")


def test_no_trial_is_pruned_during_the_pruner_warmup(tmp_path):
    config = write_config(
        tmp_path / "warm.yaml",
        {"pruner": "median", "startup_trials": 1, "pruner_warmup": 2},
        train={"epochs": 3, "batch_size": 64},
    )
    spec = load_tune(config)
    (tmp_path / "out").mkdir()
    study = open_study("digits-tiny", f"sqlite:///{tmp_path / 'out' / 'study.db'}", spec.tune, 3)
    study.enqueue_trial({"optim.lr": 0.1, "optim.name": "adamw"})
    study.enqueue_trial({"optim.lr": 0.001, "optim.name": "sgd"})  # pruned after epoch 1 without warm-up
    result = run_search(spec, tmp_path / "out", trials=2)
    bad = result.rows[1]
    assert bad["epochs"] == 3  # judged first at epoch 3, the last: pruned or not, it ran every epoch
    assert json.loads((tmp_path / "out" / "tune.json").read_text())["pruner_warmup"] == 2


def test_failed_trial_is_recorded_with_its_reason_and_the_study_goes_on(tmp_path):
    config = write_config(
        tmp_path / "fail.yaml", {"space": {"model.kwargs.num_classes": {"choice": [3, 10]}}}
    )
    spec = load_tune(config)
    (tmp_path / "out").mkdir()
    study = open_study("digits-tiny", f"sqlite:///{tmp_path / 'out' / 'study.db'}", spec.tune, 1)
    study.enqueue_trial({"model.kwargs.num_classes": 3})  # the model does not fit the data
    study.enqueue_trial({"model.kwargs.num_classes": 10})
    result = run_search(spec, tmp_path / "out", trials=2)
    failed, done = result.rows
    assert failed["state"] == "FAIL"
    assert failed["note"].startswith("ModelError: model mlp returns outputs")
    assert done["state"] == "COMPLETE"
    assert result.best_trial == 1


def test_bad_search_space_is_one_line_naming_every_problem(tmp_path, run_cli):
    config = tmp_path / "bad.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                **BASE,
                "tune": {
                    "space": {
                        "optim.lrr": {"log_uniform": [1.0e-3, 0.5]},
                        "optim.lr": {"uniform": [-0.1, 0.5]},
                        "train.batch_size": {"int": [64, 16]},
                        "optim.name": {"choice": ["sgd", "lion"]},
                    },
                    "objective": ["val.accuracy", "latency_ms"],
                    "pruner": "median",
                },
            }
        )
    )
    for command in ("validate", "tune"):
        argv = [command, config] + (["-o", tmp_path / "out"] if command == "tune" else [])
        code, _, err = run_cli(*argv)
        assert code == 2, err
        assert err.count("\n") == 1
        assert "Traceback" not in err
        assert "has 5 problems" in err
        assert "tune.space.optim.lrr: unknown key (did you mean 'lr'?)" in err
        assert "tune.space.optim.lr: the config rejects -0.1" in err
        assert "tune.space.train.batch_size: empty range [64, 16]" in err
        assert "tune.space.optim.name: the config rejects 'lion'" in err
        assert "tune.pruner: Optuna cannot prune a study with several objectives" in err


def test_two_processes_on_one_sqlite_study_both_run_trials(tmp_path):
    config = write_config(tmp_path / "jobs.yaml")
    result = tune(config, tmp_path / "out", trials=4, jobs=2)
    finished = [r for r in result.rows if r["state"] == "COMPLETE"]
    assert len(finished) == 4
    assert len({r["pid"] for r in finished}) == 2
    assert len({r["number"] for r in result.rows}) == len(result.rows)


def test_accuracy_and_latency_give_a_pareto_front(tmp_path):
    space = {"model.kwargs.hidden": {"choice": [[8], [256, 256]]}}
    objective = ["val.accuracy", {"metric": "latency_ms", "runtime": "onnxruntime"}]
    config = write_config(tmp_path / "speed.yaml", {"space": space, "objective": objective})
    result = tune(config, tmp_path / "out", trials=2)
    assert [r["state"] for r in result.rows] == ["COMPLETE", "COMPLETE"]
    assert all(r["values"]["latency_ms"] > 0 for r in result.rows)
    summary = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert summary["sampler"] == "nsga2"
    assert [o["direction"] for o in summary["objectives"]] == ["maximize", "minimize"]
    assert summary["front"] == [r["number"] for r in result.rows if r["best"]]
    assert summary["best_trial"] in summary["front"]
    assert "onnx" in Artifact.load(tmp_path / "out" / "artifact").manifest.exports


def test_report_of_a_tune_run_shows_history_importances_and_trials(searched, tmp_path):
    pytest.importorskip("matplotlib")
    from torchship.report import write_report

    _, result = searched
    report = write_report([result.out], tmp_path / "report.html", evaluate=False)
    section = next(s for s in report.sections if s.id == "tune")
    assert section.missing == []
    assert 'aria-label="optimization history"' in section.body
    assert 'aria-label="parameter importances"' in section.body
    assert section.body.count("<tr") == 1 + len(result.rows)
    # the study's best artifact is in the report, the trials' own artifacts are not
    page = (tmp_path / "report.html").read_text()
    assert "digits-tiny v1 (tune)" in page
    assert "trial-0000" not in page


def test_cli_on_a_finished_study_runs_nothing_and_prints_the_best(searched, tmp_path, run_cli):
    config, first = searched
    out = tmp_path / "cli"
    shutil.copytree(first.out, out)
    code, stdout, err = run_cli("tune", config, "-o", out, "--trials", "3")
    assert code == 0, err
    assert f"best trial {first.best_trial}: val.accuracy" in stdout
    code, stdout, err = run_cli("tune", config, "-o", out, "--trials", "3", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["ran"] == 0
    assert summary["best_trial"] == first.best_trial
