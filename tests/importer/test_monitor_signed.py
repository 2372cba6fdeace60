"""Drift for models described by their signature: a baseline from sample inputs, PSI per named
float input and per output, integer inputs skipped visibly; offline and in the server."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import numpy as np
import pytest
import torch
from byo_nets import regression_artifact

from torchship.artifact import Artifact
from torchship.monitor import MonitorConfig, check
from torchship.monitor.baseline import Baseline
from torchship.serve import ServeConfig


def _inputs(path, rows=400, shift=0.0, seed=0):
    x = np.random.default_rng(seed).standard_normal((rows, 6)).astype(np.float32) + shift
    np.savez(path, input=x)
    return path


@pytest.fixture(scope="module")
def watched_reg(tmp_path_factory):
    """The two-output regression with a reference recorded from 400 standard-normal rows."""
    root = tmp_path_factory.mktemp("reg-watch")
    regression_artifact(root / "reg" / "artifact")
    from torchship.monitor.baseline import reference_from_feeds
    from torchship.runtime.feeds import read_feeds

    parent = Artifact.load(root / "reg" / "artifact")
    feeds = read_feeds(_inputs(root / "ref.npz"), parent.manifest.signature)
    parent.with_manifest(reference=reference_from_feeds(parent, feeds)).save(root / "watched" / "artifact")
    return root / "watched" / "artifact"


def test_imported_model_without_reference_says_how_to_record_one(tmp_path, run_cli):
    _, art = regression_artifact(tmp_path / "reg" / "artifact")
    code, _, err = run_cli("monitor", "check", art.path, "--inputs", _inputs(tmp_path / "new.npz"))
    assert code == 2
    assert "torchship monitor baseline" in err
    assert "Traceback" not in err


def test_regression_baseline_bins_each_named_input_and_output(watched_reg):
    ref = Artifact.load(watched_reg).manifest.reference
    assert set(ref.named_inputs) == {"input"}  # one group per named input, not per feature
    assert set(ref.named_outputs) == {"mean", "scale"}
    assert ref.prediction_freq == []  # a regression has no classes
    baseline = Baseline.from_artifact(Artifact.load(watched_reg))
    assert baseline.groups == ["input", "mean", "scale"]
    assert baseline.input_groups == 1


def test_regression_check_flags_a_shift_in_inputs_and_outputs(watched_reg, tmp_path, run_cli):
    calm = check(Artifact.load(watched_reg), inputs=_inputs(tmp_path / "same.npz", seed=1))
    assert calm.scores.status == "ok", calm.to_json()
    assert calm.scores.prediction_psi is None
    assert set(calm.scores.output_psi) == {"mean", "scale"}

    code, out, err = run_cli(
        "monitor",
        "check",
        watched_reg,
        "--inputs",
        _inputs(tmp_path / "new.npz", shift=1.5, seed=2),
        "--json",
    )
    assert code == 1, err
    scores = json.loads(out)
    assert "input_psi:input" in scores["drift"]
    assert "output_psi:mean" in scores["drift"]
    assert scores["prediction_psi"] is None


def test_check_without_named_inputs_is_one_line(watched_reg, run_cli):
    code, _, err = run_cli("monitor", "check", watched_reg)
    assert code == 2
    assert "takes named inputs (input)" in err
    assert "--inputs" in err


def test_bert_token_ids_are_skipped_visibly_and_classes_watched(bert_artifact, tmp_path, run_cli):
    ids = np.random.default_rng(0).integers(0, 1000, size=(64, 12))
    np.savez(tmp_path / "ref.npz", input_ids=ids, attention_mask=np.ones_like(ids))
    code, out, err = run_cli(
        "monitor", "baseline", bert_artifact, "--inputs", tmp_path / "ref.npz", "-o", tmp_path / "w"
    )
    assert code == 0, err
    assert "input input_ids skipped" in out
    ref = Artifact.load(tmp_path / "w" / "artifact").manifest.reference
    assert set(ref.skipped_inputs) == {"input_ids", "attention_mask"}
    assert ref.named_inputs == {}
    assert len(ref.prediction_freq) == 3
    code, out, err = run_cli(
        "monitor", "check", tmp_path / "w" / "artifact", "--inputs", tmp_path / "ref.npz"
    )
    assert code == 0, err
    assert "prediction PSI" in out
    assert "skipped" in out


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_served_regression_reports_per_input_and_per_output_psi(watched_reg, tmp_path):
    from serve_helpers import in_process

    shutil.copytree(watched_reg, tmp_path / "repo" / "reg" / "1")
    config = ServeConfig(
        access_log=False, monitor=MonitorConfig(window_rows=256, min_rows=64, max_rows_per_s=1e6)
    )
    x = np.random.default_rng(3).standard_normal((128, 6)).astype(np.float32) + 2.0
    async with in_process(tmp_path / "repo", config) as client:
        for i in range(0, 128, 16):
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [16, 6],
                        "datatype": "FP32",
                        "data": x[i : i + 16].ravel().tolist(),
                    }
                ]
            }
            assert (await client.post("/v2/models/reg/infer", json=body)).status_code == 200
        deadline = time.monotonic() + 20
        while (drift := (await client.get("/v1/models/reg/drift")).json())["rows"] < 128:
            assert time.monotonic() < deadline, drift
            await asyncio.sleep(0.05)
        metrics = (await client.get("/metrics")).text
    assert set(drift["input_psi"]) == {"input"}
    assert set(drift["output_psi"]) == {"mean", "scale"}
    assert drift["status"] == "drift"
    assert "input_psi:input" in drift["drift"]
    assert "torchship_drift_output_psi" in metrics


def test_several_inputs_are_scored_one_psi_per_float_input_and_ids_skipped(tmp_path):
    from byo_nets import Mixed

    from torchship.importer import from_model
    from torchship.monitor.baseline import reference_from_feeds

    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def sample(rows, shift_b=0.0):
        return {
            "a": rng.standard_normal((rows, 4)).astype(np.float32),
            "b": rng.standard_normal((rows, 3)).astype(np.float32) + shift_b,
            "ids": rng.integers(0, 10, size=rows),
        }

    example = {k: torch.from_numpy(v) for k, v in sample(4).items()}
    art = from_model(
        Mixed(), example, name="mixed", task="regression", ranges={"ids": [0, 10]}, out=tmp_path / "m"
    )
    art = art.with_manifest(reference=reference_from_feeds(art, sample(400))).save(tmp_path / "w")
    np.savez(tmp_path / "new.npz", **sample(400, shift_b=2.0))
    scores = check(Artifact.load(tmp_path / "w"), inputs=tmp_path / "new.npz").scores
    assert set(scores.input_psi) == {"a", "b"}
    assert scores.input_psi["a"] < 0.1 < 1.0 < scores.input_psi["b"]  # only b moved
    assert "input_psi:b" in scores.drift
    assert "input_psi:a" not in scores.drift
    assert set(scores.skipped_inputs) == {"ids"}
    assert set(scores.output_psi) == {"output"}


async def _logged(client, records: int) -> None:
    """Wait (20 s at most) until the server's request log has written ``records``."""
    deadline = time.monotonic() + 20
    while (summary := (await client.get("/v1/summary")).json())["server"]["request_log"]["written"] < records:
        assert time.monotonic() < deadline, summary
        await asyncio.sleep(0.05)


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["requests.jsonl", "requests.db"])
async def test_request_log_records_each_named_input_and_output(tmp_path, name):
    """A served two-input classifier: one record per request, every input and output by name."""
    import sqlite3

    from byo_nets import token_pair_artifact
    from serve_helpers import in_process

    from torchship.monitor import RequestLogConfig

    token_pair_artifact(tmp_path / "repo" / "pair" / "1")
    log_path = tmp_path / "logs" / name
    config = ServeConfig(
        access_log=False, monitor=MonitorConfig(request_log=RequestLogConfig(path=log_path, sample_rate=1.0))
    )
    rng = np.random.default_rng(0)
    sent = []
    async with in_process(tmp_path / "repo", config) as client:
        for rows, seq in ((2, 5), (1, 9), (3, 4)):
            ids = rng.integers(0, 50, size=(rows, seq))
            sent.append(ids)
            body = {
                "inputs": [
                    {"name": "ids", "shape": [rows, seq], "datatype": "INT64", "data": ids.ravel().tolist()},
                    {"name": "mask", "shape": [rows, seq], "datatype": "INT64", "data": [1] * (rows * seq)},
                ]
            }
            response = await client.post("/v2/models/pair/infer", json=body)
            assert response.status_code == 200, response.text
        await _logged(client, 3)
    if name.endswith(".jsonl"):
        records = [json.loads(line) for line in log_path.read_text().splitlines()]
    else:
        with sqlite3.connect(log_path) as db:
            rows = db.execute("SELECT model, prediction, confidence, input, logits, outputs FROM requests")
            records = [
                dict(zip(("model", "prediction", "confidence", "input", "logits", "outputs"), r, strict=True))
                for r in rows.fetchall()
            ]
            records = [{k: json.loads(v) if k != "model" and v else v for k, v in r.items()} for r in records]
    assert len(records) == 3  # one per request, none skipped
    by_rows = sorted(records, key=lambda r: np.asarray(r["input"]["ids"]).size)
    for record, ids in zip(by_rows, sorted(sent, key=np.size), strict=True):
        assert record["model"] == "pair"
        assert set(record["input"]) == {"ids", "mask"}
        assert record["input"]["ids"] == ids.tolist()
        assert set(record["outputs"]) == {"logits", "pooled"}
        logits = np.asarray(record["outputs"]["logits"])
        assert logits.shape == (len(ids), 3)
        assert np.asarray(record["outputs"]["pooled"]).shape == (len(ids), 8)
        assert record["prediction"] == logits.argmax(axis=1).tolist()  # the class output is judged
        assert len(record["confidence"]) == len(ids)


@pytest.mark.anyio
async def test_request_log_records_a_one_input_regression_without_predictions(tmp_path):
    """One float input and one (batch,) output travel as arrays, but there are no logits to judge."""
    from serve_helpers import in_process

    from torchship.importer import from_model
    from torchship.monitor import RequestLogConfig

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 1), torch.nn.Flatten(0))
    from_model(net, (torch.randn(4, 6),), name="lin", task="regression", out=tmp_path / "repo" / "lin" / "1")
    log_path = tmp_path / "requests.jsonl"
    config = ServeConfig(
        access_log=False, monitor=MonitorConfig(request_log=RequestLogConfig(path=log_path, sample_rate=1.0))
    )
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    body = {"inputs": [{"name": "input", "shape": [2, 6], "datatype": "FP32", "data": x.ravel().tolist()}]}
    async with in_process(tmp_path / "repo", config) as client:
        response = await client.post("/v2/models/lin/infer", json=body)
        assert response.status_code == 200, response.text
        await _logged(client, 1)
    (record,) = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert record["input"] == x.tolist()
    assert record["prediction"] is None
    assert set(record["outputs"]) == {"output"}
    assert len(record["outputs"]["output"]) == 2
