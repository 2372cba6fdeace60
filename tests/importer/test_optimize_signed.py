"""``optimize`` on models without labelled data: candidates judged by agreement with fp32."""

from __future__ import annotations

import json

import pytest
from byo_nets import regression_artifact

from torchship.artifact import Artifact
from torchship.compress.optimize import OptimizeConfig, optimize

FAST = {"warmup": 1, "min_iterations": 3, "min_time_s": 0.0, "max_time_s": 0.3, "rounds": 1}


def settings(**overrides) -> OptimizeConfig:
    return OptimizeConfig(**{"recipes": ["int8-dynamic"], "timing": FAST, **overrides})


def test_regression_is_judged_by_max_relative_diff_of_every_output(tmp_path):
    _, art = regression_artifact(tmp_path / "reg" / "artifact")
    recipes = ["int8-dynamic", "int8-static-minmax"]
    result = optimize(
        art, settings(recipes=recipes, max_relative_diff=1.0), out=tmp_path / "opt" / "artifact"
    )
    doc = json.loads((result.out / "optimize.json").read_text())
    assert doc["judged_by"] == "agreement"
    assert "no labelled data" in doc["judgement"]
    base, int8, static = doc["candidates"]
    assert base["agreement"]["max_abs_diff"] == 0.0  # the reference agrees with itself
    assert int8["status"] == "ok"
    assert set(int8["agreement"]["outputs"]) == {"mean", "scale"}
    assert "top1_agreement" not in int8["agreement"]  # a regression has no top class
    assert int8["accuracy_drop"] is None
    assert 0 < int8["agreement"]["max_rel_diff"] <= 1.0
    assert int8["within_budget"]
    assert static["status"] == "skipped"
    assert "labelled data" in static["reason"]
    md = (result.out / "optimize.md").read_text()
    assert "output agreement" in md
    assert "max Δ (rel)" in md
    # a budget tighter than int8's error rejects it
    tight = optimize(art, settings(max_relative_diff=1e-9), out=tmp_path / "tight" / "artifact")
    assert tight.document["candidates"][1]["within_budget"] is False
    assert tight.picked is None


def test_bert_classifier_is_judged_by_top1_agreement(bert_artifact, tmp_path):
    result = optimize(Artifact.load(bert_artifact), settings(), out=tmp_path / "opt" / "artifact")
    base, int8 = result.document["candidates"]
    assert result.document["judged_by"] == "agreement"
    assert base["runtime"] in ("onnxruntime", "exported")  # no --allow-import: no eager
    assert int8["status"] == "ok", int8
    agreement = int8["agreement"]
    assert 0.0 <= agreement["top1_agreement"] <= 1.0
    assert agreement["samples"] == 128
    assert int8["accuracy_drop"] == pytest.approx(1.0 - agreement["top1_agreement"])
    assert set(agreement["outputs"]) == {"logits"}


def test_onnx_only_artifact_optimizes_from_its_graph(onnx_only, tmp_path, run_cli):
    code, out, err = run_cli(
        "optimize",
        onnx_only.path,
        "-o",
        tmp_path / "opt",
        "--recipe",
        "int8-dynamic",
        "--max-relative-diff",
        "1",
        "--set",
        "timing.rounds=1",
        "--set",
        "timing.min_time_s=0",
        "--set",
        "timing.max_time_s=0.3",
    )
    assert "judged by output agreement" in out, (out, err)
    assert "Traceback" not in err
    doc = json.loads((tmp_path / "opt" / "optimize.json").read_text())
    assert doc["baseline"]["runtime"] == "onnxruntime"
    assert doc["candidates"][1]["status"] == "ok"
    assert code in (0, 2)  # int8 of a 6-16-2 net may or may not be faster; either way one line, no crash
