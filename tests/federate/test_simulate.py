"""Simulation: Flower's strategy and ClientApp over in-process clients, every round an artifact."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from tests.federate.conftest import make_run

from torchship.artifact import Artifact
from torchship.federate import simulate


def _quiet() -> Console:
    return Console(quiet=True)


def test_simulation_learns_and_writes_every_round(tmp_path: Path):
    out = tmp_path / "fed"
    art = simulate(make_run(clients=3, rounds=2), out, console=_quiet())

    assert art.manifest.metrics["val"]["accuracy"] > 0.8  # chance is 0.1
    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(len(r["participants"]) == 3 and not r["dropped"] for r in rounds)
    assert rounds[1]["val.accuracy"] >= rounds[0]["val.accuracy"] - 0.05
    first, second = Artifact.load(out / "rounds" / "001"), Artifact.load(out / "rounds" / "002")
    assert second.manifest.lineage.parent == first.digest
    params = second.manifest.lineage.params
    assert (params["round"], params["strategy"], len(params["participants"])) == (2, "fedavg", 3)
    assert Artifact.load(out / "artifact").manifest.lineage.params["round"] == 2
    sizes = [c["size"] for c in json.loads((out / "partitions.json").read_text())["clients"]]
    assert sum(sizes) == rounds[0]["samples"]


def test_a_client_that_raises_is_dropped_and_the_rounds_go_on(tmp_path: Path, client_files):
    nodes = [
        {"data-path": str(client_files[0]), "name": "good-a"},
        {"data-path": str(client_files[1]), "name": "good-b"},
        {"data-path": str(tmp_path / "missing.npz"), "name": "broken"},
    ]
    out = tmp_path / "fed"
    run = make_run(clients=3, rounds=2, partition="by-file")
    art = simulate(run, out, console=_quiet(), node_configs=nodes)

    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert all(sorted(r["participants"]) == ["good-a", "good-b"] for r in rounds)
    assert all(list(r["dropped"]) == ["broken"] and "missing.npz" in r["dropped"]["broken"] for r in rounds)
    assert art.manifest.metrics["val"]["accuracy"] > 0.5
    assert json.loads((out / "summary.json").read_text())["dropped"] == {"1": ["broken"], "2": ["broken"]}


def test_resume_continues_after_the_last_round(tmp_path: Path):
    out = tmp_path / "fed"
    simulate(make_run(clients=2, rounds=1), out, console=_quiet())
    art = simulate(make_run(clients=2, rounds=2), out, console=_quiet(), resume=True)

    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    assert art.manifest.lineage.params["round"] == 2
    assert art.manifest.lineage.parent == Artifact.load(out / "rounds" / "001").digest


def test_differential_privacy_records_its_parameters_and_epsilon(tmp_path: Path):
    run = make_run(clients=3, rounds=2, privacy={"clip_norm": 2.0, "noise_multiplier": 1.0})
    art = simulate(run, tmp_path / "fed", console=_quiet())

    privacy = art.manifest.lineage.params["privacy"]
    assert privacy["clip_norm"] == 2.0
    assert privacy["noise_multiplier"] == 1.0
    assert privacy["mechanism"] == "gaussian, fixed clipping on the client"
    assert privacy["rounds"] == 2
    assert privacy["delta"] == 1e-5
    assert privacy["epsilon"] > 0
    rounds = [json.loads(line) for line in (tmp_path / "fed" / "rounds.jsonl").read_text().splitlines()]
    assert rounds[1]["epsilon"] > rounds[0]["epsilon"]  # privacy spent grows with every release


def test_fedadam_runs_and_says_why_it_has_no_epsilon(tmp_path: Path):
    run = make_run(
        clients=2,
        rounds=1,
        strategy="fedadam",
        privacy={"clip_norm": 2.0, "noise_multiplier": 1.0, "side": "server"},
    )
    art = simulate(run, tmp_path / "fed", console=_quiet())

    privacy = art.manifest.lineage.params["privacy"]
    assert privacy["epsilon"] is None
    assert "fedadam" in privacy["epsilon_not_computed"]
