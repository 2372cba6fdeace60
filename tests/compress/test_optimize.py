"""``optimize``: candidates measured against the best fp32 runtime, Pareto front, budget, resume."""

from __future__ import annotations

import json

import pytest

from torchship.artifact import Artifact
from torchship.compress import CompressError
from torchship.compress.optimize import OptimizeConfig, mark_pareto_, optimize, recipes_for
from torchship.compress.verdict import document as document_for

from .conftest import checksums

FAST = {"warmup": 1, "min_iterations": 5, "min_time_s": 0.0, "max_time_s": 0.5, "rounds": 2}
TWO = ["int8-dynamic", "int8-static-minmax"]


def settings(**overrides) -> OptimizeConfig:
    return OptimizeConfig(**{"recipes": TWO, "batch_size": 8, "timing": FAST, **overrides})


@pytest.fixture(scope="module")
def optimized(trained_cnn, tmp_path_factory):
    before = checksums(trained_cnn.path)
    out = tmp_path_factory.mktemp("opt") / "run"
    return before, optimize(trained_cnn, settings(), out=out)


def test_optimize_measures_against_the_fastest_fp32_runtime(trained_cnn, optimized):
    before, result = optimized
    doc = json.loads((result.out / "optimize.json").read_text())
    assert doc["kind"] == "torchship.optimize"
    assert doc["parent"] == trained_cnn.digest
    base = doc["baseline"]
    measured = {n: r for n, r in base["runtimes"].items() if "latency_p50_ms" in r}
    assert {"eager", "onnxruntime"} <= set(measured)  # more than one fp32 runtime was tried
    assert base["runtime"] == min(measured, key=lambda n: measured[n]["latency_p50_ms"])
    assert [c["name"] for c in doc["candidates"]] == ["fp32", *TWO]
    for c in doc["candidates"][1:]:
        assert c["status"] == "ok"
        assert c["runtime"] == "onnxruntime"
        assert c["speedup"] == pytest.approx(c["throughput_sps"] / base["throughput_sps"])
        assert c["faster"] == (c["speedup"] >= 1.05)  # a noise-sized win is not "faster"
        assert c["accuracy_drop"] == pytest.approx(base["accuracy"] - c["accuracy"])
        assert c["size_bytes"] < base["size_bytes"] or base["runtime"] == "eager"
    assert checksums(trained_cnn.path) == before


def test_optimize_picks_inside_the_budget_and_saves_table_and_front(optimized):
    _, result = optimized
    doc = result.document
    eligible = [c for c in doc["candidates"][1:] if c["faster"] and c["within_budget"]]
    if eligible:
        best = min(eligible, key=lambda c: c["latency_p50_ms"])
        assert doc["picked"] == best["name"]
        assert result.picked is not None
        assert result.picked.path == result.out / "artifact", "the pick is copied to where -o puts artifacts"
        assert result.picked.digest == Artifact.load(best["artifact"]).digest
        assert result.picked.manifest.lineage.op == "quantize"
    else:
        assert doc["picked"] is None
        assert doc["verdict"].startswith("no candidate")
        assert not (result.out / "artifact").exists()
    assert sum(c["picked"] for c in doc["candidates"]) == (1 if eligible else 0)
    assert doc["pareto"]
    assert set(doc["pareto"]) == {c["name"] for c in doc["candidates"] if c["pareto"]}
    table = (result.out / "optimize.md").read_text()
    assert all(f"| {name} |" in table for name in ["fp32", *TWO])
    assert doc["verdict"] in table


def row(name, accuracy, latency, size, **extra):
    return {
        "name": name,
        "status": "ok",
        "accuracy": accuracy,
        "latency_p50_ms": latency,
        "size_bytes": size,
        "throughput_sps": 8e3 / latency,
        "artifact": f"/x/{name}",
        **extra,
    }


def test_a_slower_candidate_is_never_picked_and_no_winner_is_said_plainly(trained_cnn):
    base = row("fp32", 0.95, 1.0, 1000, baseline=True, runtime="onnxruntime")
    slow_but_accurate = row("slow", 0.95, 1.2, 300)
    barely_faster = row("noise", 0.95, 0.97, 200)  # 3 % is inside measurement noise
    fast_but_wrong = row("wrong", 0.80, 0.4, 250)
    doc = document_for(
        trained_cnn, settings(objective="size"), base, [slow_but_accurate, barely_faster, fast_but_wrong]
    )
    assert doc["picked"] is None
    assert doc["picked_artifact"] is None
    flags = {c["name"]: (c.get("faster"), c.get("within_budget")) for c in doc["candidates"]}
    assert flags == {
        "fp32": (False, True),
        "slow": (False, True),
        "noise": (False, True),
        "wrong": (True, False),
    }
    assert doc["verdict"].startswith("no candidate is both faster than fp32 onnxruntime")
    ok = row("ok", 0.945, 0.8, 900)
    doc = document_for(
        trained_cnn, settings(objective="size"), base, [slow_but_accurate, barely_faster, fast_but_wrong, ok]
    )
    assert doc["picked"] == "ok"  # the smallest (slow) is not faster, so size picks the next one


def test_pareto_front_drops_only_dominated_rows():
    rows = [
        row("a", 0.95, 1.0, 100),
        row("b", 0.94, 0.5, 100),
        row("c", 0.94, 0.6, 100),
        row("d", 0.90, 0.7, 50),
        {"name": "e", "status": "failed"},
    ]
    mark_pareto_(rows)
    assert [r["name"] for r in rows if r["pareto"]] == ["a", "b", "d"]


def test_optimize_resumes_without_recomputing_finished_candidates(trained_cnn, tmp_path):
    out = tmp_path / "run"

    def interrupt(message):
        if message == "start int8-static-minmax":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optimize(trained_cnn, settings(), out=out, progress=interrupt)
    finished = out / "candidates" / "int8-dynamic" / "result.json"
    assert finished.is_file()
    assert not (out / "optimize.json").exists()
    kept = {finished: finished.read_bytes()}
    base_before = json.loads((out / "baseline" / "result.json").read_text())
    (out / "candidates" / "int8-static-minmax" / "artifact").mkdir(parents=True)  # half-made, no result.json
    started = []
    result = optimize(trained_cnn, settings(), out=out, progress=lambda m: started.append(m))
    assert result.reused == ["int8-dynamic"]
    assert result.computed == ["int8-static-minmax"]
    assert started == ["start int8-static-minmax", "done int8-static-minmax"]
    assert all(
        p.read_bytes() == data for p, data in kept.items()
    )  # the finished candidate was not re-measured
    assert (
        json.loads((out / "baseline" / "result.json").read_text()) == base_before
    )  # the baseline was not redone
    rows = result.document["candidates"]
    assert all(
        r["timing_rounds"] == 2 and r["first_pass_p50_ms"] > 0 for r in rows
    )  # timed together at the end
    assert [c["status"] for c in result.document["candidates"]] == ["ok", "ok", "ok"]
    again = optimize(trained_cnn, settings(), out=out, progress=lambda m: started.append(m))
    assert again.computed == []
    assert len(started) == 2
    # a result made under other settings is stale: a new budget re-runs what it changes (int8 fallback)
    looser = optimize(trained_cnn, settings(recipes=["int8-dynamic"], max_accuracy_drop=0.5), out=out)
    assert looser.computed == ["int8-dynamic"]
    assert looser.document["settings"]["max_accuracy_drop"] == 0.5
    assert json.loads((out / "baseline" / "result.json").read_text())["runtimes"] == base_before["runtimes"]


def test_time_budget_stops_starting_candidates(trained_cnn, tmp_path):
    result = optimize(trained_cnn, settings(time_budget_min=1e-6), out=tmp_path / "run")
    skipped = [c for c in result.document["candidates"] if not c.get("baseline")]
    assert all(c["status"] == "skipped" and "time budget" in c["reason"] for c in skipped)
    assert result.picked is None
    assert not (tmp_path / "run" / "candidates" / "int8-dynamic" / "result.json").exists()


def test_recipes_combine_after_their_base_and_unknown_names_fail():
    names = [r.name for r in recipes_for(OptimizeConfig(prune_ratios=[0.5], student="cnn"))]
    assert names.index("prune-50+int8-static") > names.index("prune-50")
    assert "distill" in names
    assert "distill+int8-static" in names
    assert [r.name for r in recipes_for(OptimizeConfig(recipes=["fuse+int8-static"]))] == [
        "fuse",
        "fuse+int8-static",
    ]
    with pytest.raises(
        CompressError, match="unknown optimize recipe 'prunee'; choose from: fuse, int8-dynamic"
    ):
        recipes_for(OptimizeConfig(recipes=["prunee"]))


def test_cli_optimize_prints_the_table_and_the_pick(run_cli, trained_cnn, tmp_path):
    code, out, err = run_cli(
        "optimize",
        trained_cnn.path,
        "--recipe",
        "int8-dynamic",
        "--batch-size",
        "8",
        "--set",
        "timing.min_time_s=0",
        "--set",
        "timing.min_iterations=5",
        "--max-accuracy-drop",
        "1.0",
        "-o",
        tmp_path / "opt",
    )
    doc = json.loads((tmp_path / "opt" / "optimize.json").read_text())
    if doc["picked"]:
        assert code == 0, err
        assert f"picked {doc['picked']}: " in out
        assert f"artifact: {tmp_path / 'opt' / 'artifact'}" in out  # -o OUT: the pick lands in OUT/artifact
    else:  # int8 was not faster on this machine: said in one line, exit 2
        assert code == 2
        assert err.strip().splitlines()[-1].startswith("error: no candidate is both faster")
    assert "fp32" in out
    # names fold inside their column in an 80-column log: join the first column's pieces
    candidates = "".join(line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│"))
    assert "int8-dynamic" in candidates
    assert "optimize.json" in out
