"""The main job end to end: train -> export -> bench -> a serve request that works."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from torchship.artifact import Artifact
from torchship.quickstart import QUICK_BATCHES, QUICK_RUNTIMES, run_quickstart

SERVE_TESTS = Path(__file__).parent.parent / "serve"
if str(SERVE_TESTS) not in sys.path:  # serve_helpers: the in-process server the serve tests use
    sys.path.insert(0, str(SERVE_TESTS))


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    return run_quickstart(tmp_path_factory.mktemp("qs"), epochs=2, console=Console(quiet=True))


def test_quickstart_exports_verified_and_benches_every_runtime(quickstart):
    art = Artifact.load(quickstart.artifact.path)  # reloads: checksums of the exports hold
    for fmt in ("onnx", "torchscript"):
        assert art.manifest.exports[fmt]["max_abs_diff"] <= 1e-4
    doc = json.loads((quickstart.out / "bench.json").read_text())
    rows = {(r["artifact"], r["runtime"], r["batch_size"]): r for r in doc["results"]}
    labels = ("digits-cnn v1 (train)", "digits-cnn v2 (prune)")  # parent and child, told apart
    assert set(rows) == {(a, rt, b) for a in labels for rt in QUICK_RUNTIMES for b in QUICK_BATCHES}
    assert all(r["status"] == "ok" and r["throughput_sps"] > 0 for r in rows.values())
    summary = (quickstart.out / "summary.md").read_text()
    assert "exported onnx" in summary
    assert quickstart.serve_command in summary


def test_quickstart_prunes_a_smaller_child_that_names_its_parent(quickstart):
    child = Artifact.load(quickstart.pruned.path)
    assert child.manifest.lineage.op == "prune"
    assert child.manifest.lineage.parent == quickstart.artifact.digest
    assert child.manifest.exports["onnx"]["max_abs_diff"] <= 1e-4
    child_bytes = (child.path / "weights.safetensors").stat().st_size
    assert child_bytes < 0.75 * (quickstart.artifact.path / "weights.safetensors").stat().st_size


def test_the_printed_request_works_against_the_server(quickstart):
    """What the quickstart tells the user to curl is a valid v2 request for the served artifact."""
    import anyio
    from serve_helpers import in_process

    request = json.loads((quickstart.out / "request.json").read_text())
    name = quickstart.artifact.manifest.name
    assert f"/v2/models/{name}/infer" in quickstart.curl_command

    async def call():
        async with in_process(quickstart.artifact.path) as client:
            return await client.post(f"/v2/models/{name}/infer", json=request)

    response = anyio.run(call)
    assert response.status_code == 200, response.text
    out = response.json()["outputs"][0]
    assert out["name"] == "probabilities"
    assert out["shape"] == [1, 3]
    score, index, label = out["data"][0].split(":")
    assert 0 < float(score) <= 1
    assert int(index) in range(10)
    assert label == str(index)
    x = np.asarray(request["inputs"][0]["data"], dtype=np.float32).reshape(request["inputs"][0]["shape"])
    import torch

    with torch.inference_mode():
        expected = int(quickstart.artifact.build_model()(torch.from_numpy(x)).argmax())
    assert int(index) == expected
