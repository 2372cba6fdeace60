"""bench on imported models: valid generated inputs per dtype/range, --dim overrides, ONNX-only artifacts."""

from __future__ import annotations

import json

from torchship.artifact import Artifact
from torchship.bench import TimingConfig, bench
from torchship.bench.run import example_batch

FAST = TimingConfig(warmup=1, min_iterations=3, min_time_s=0.0, max_time_s=5.0)


def test_bert_bench_generates_valid_tokens_at_the_asked_length(bert_artifact):
    art = Artifact.load(bert_artifact)
    batch = example_batch(art, 4, dims={"seq": 40})
    assert batch["input_ids"].shape == (4, 40)
    assert batch["input_ids"].dtype.name == "int64"
    assert batch["input_ids"].min() >= 0
    assert batch["input_ids"].max() < 1000
    assert (batch["attention_mask"] == 1).all()
    rows = bench([art], "exported,eager", [1, 2], timing=FAST, dims={"seq": 24})
    by_runtime = {(r.runtime, r.batch_size): r for r in rows}
    assert by_runtime[("exported", 2)].ok
    assert not by_runtime[("eager", 1)].ok  # the class was not allowed: a skipped row, said why
    assert "was not allowed" in by_runtime[("eager", 1)].reason


def test_onnx_only_artifact_benches_and_quantizes(onnx_only, tmp_path, run_cli):
    code, out, err = run_cli(
        "bench",
        onnx_only.path,
        "--runtime",
        "onnxruntime",
        "--batch-sizes",
        "1,4",
        "--min-iterations",
        "3",
        "--min-time-s",
        "0",
        "--json",
        tmp_path / "b.json",
    )
    assert code == 0, err
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    code, out, err = run_cli(
        "compress", onnx_only.path, "quantize", "--mode", "dynamic", "-o", tmp_path / "q"
    )
    assert code == 0, err
    assert "max |Δ| vs fp32" in out
    (manifest,) = (tmp_path / "q").rglob("manifest.json")  # OUT or OUT/artifact, per the layout rule
    assert "onnx-int8" in Artifact.load(manifest.parent).manifest.exports


def test_onnx_only_artifact_refuses_prune_in_one_line(onnx_only, tmp_path, run_cli):
    code, _, err = run_cli("compress", onnx_only.path, "prune", "-o", tmp_path / "p")
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "imported as a program only" in err or "handles one float input" in err
