"""``torchship bench`` through the real main(): JSON with every field, one-line errors, --help example."""

import json
from dataclasses import fields

from torchship.bench import BenchResult

FAST = ("--warmup", "1", "--min-iterations", "5", "--min-time-s", "0", "--max-time-s", "2")


def test_bench_json_has_every_field(run_cli, tiny_cnn_artifact, tmp_path):
    out_json, out_csv = tmp_path / "bench.json", tmp_path / "bench.csv"
    code, out, err = run_cli(
        "bench",
        tiny_cnn_artifact.path,
        "--runtime",
        "eager",
        "--batch-sizes",
        "1,8",
        "--threads",
        "1",
        "--data",
        "digits",
        "--json",
        out_json,
        "--csv",
        out_csv,
        *FAST,
    )
    assert code == 0, err
    assert "tiny-cnn" in out
    assert "samples/s" in out
    document = json.loads(out_json.read_text())
    assert document["schema"] == 1
    assert document["timing"]["min_iterations"] == 5
    assert document["command"].startswith("torchship bench ")
    assert {"platform", "logical_cores", "cpu_model"} <= set(document["machine"])
    names = {f.name for f in fields(BenchResult)}
    assert len(document["results"]) == 2
    for result in document["results"]:
        assert set(result) == names
        assert result["status"] == "ok"
        assert result["reason"] is None
        empty = [k for k, v in result.items() if v is None and k not in ("reason",)]
        assert not empty, empty  # with --data every field is measured, accuracy included
        assert 0.0 <= result["accuracy"] <= 1.0
    assert len(out_csv.read_text().splitlines()) == 3


def test_help_ends_with_an_example(run_cli):
    code, out, _ = run_cli("bench", "--help")
    assert code == 0
    example = out[out.rindex("Example:") :]
    assert " ".join(example.split()).startswith("Example: torchship bench runs/digits-cnn/artifact")
    assert not out[out.rindex("Example:") :].strip().endswith("│")  # the example is the last thing


def test_bad_batch_sizes_are_one_line(run_cli, tiny_cnn_artifact):
    code, _, err = run_cli("bench", tiny_cnn_artifact.path, "--batch-sizes", "1,x")
    assert code == 2
    assert err.strip() == "error: --batch-sizes '1,x': 'x' is not a positive integer; use e.g. 1,8,32"


def test_unknown_runtime_is_one_line(run_cli, tiny_cnn_artifact):
    code, _, err = run_cli("bench", tiny_cnn_artifact.path, "--runtime", "onnxrt")
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: unknown runtime 'onnxrt'; choose one of:")


def test_unexported_runtime_is_a_skipped_row_not_a_crash(run_cli, tiny_cnn_artifact, fake_runtimes):
    code, out, err = run_cli(
        "bench", tiny_cnn_artifact.path, "--runtime", "eager,cannot-load", "-b", "1", *FAST
    )
    assert code == 0, err
    assert "tiny-cnn/cannot-load skipped: cannot load: artifact has no file 'model.fake'" in " ".join(
        out.split()
    )
