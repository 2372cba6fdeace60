"""The HTML report over a real (tiny) quickstart run, a pruned child, bench and optimize results."""

from __future__ import annotations

import base64
import io
import json
import re
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from torchship.report import collect, read_optimize, write_report
from torchship.report.collect import Confusion
from torchship.report.results import mark_pareto_front_

SECTIONS = ("overview", "metrics", "curves", "confusion", "lineage", "optimize", "bench", "exports")


def section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', page, flags=re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def parsed_svgs(page: str) -> list[ET.Element]:
    """Every inline SVG, parsed as XML (a malformed one raises)."""
    return [ET.fromstring(text) for text in re.findall(r"<svg\b.*?</svg>", page, flags=re.S)]


def test_quickstart_ends_with_a_report_of_every_section(quickstart):
    path = quickstart.out / "report.html"
    assert f"report -> {path}" in quickstart.steps
    page = path.read_text(encoding="utf-8")
    for sid in SECTIONS:
        assert f'href="#{sid}"' in page
        section(page, sid)
    # the quickstart trains, exports and benches but does not optimize: only that is missing
    missing = {sid for sid in SECTIONS if "missing:" in section(page, sid)}
    assert missing == {"optimize"}, missing
    assert "onnxruntime" in section(page, "bench")
    assert "torchscript" in section(page, "exports")


def test_full_report_shows_every_section(full_report, quickstart, pruned):
    result, page = full_report
    by_id = {s.id: s for s in result.sections}
    assert list(by_id) == list(SECTIONS)
    # the quickstart trains, exports, prunes and benches, and optimize comes from the fixture
    assert {s.id for s in result.sections if s.missing} == set()
    metrics = section(page, "metrics")
    for label in ("digits-cnn v1 (train)", "digits-cnn v2 (prune)"):
        assert f'<td class="l">{label}</td><td class="l">val</td>' in metrics
    assert "<th>f1_macro</th>" in metrics
    curves = section(page, "curves")
    assert "train.loss" in curves
    assert "learning rate" in curves
    assert "log.jsonl" in curves
    confusion = section(page, "confusion")
    assert confusion.count("precision") == 2  # one per-class table per artifact
    assert "evaluation.json in the artifact" in confusion  # the trained artifact stores its matrix
    assert "computed for this report" in confusion  # the pruned one does not: computed, not stored
    assert "evaluation.json" not in pruned.manifest.files
    exports = section(page, "exports")
    assert "onnx" in exports
    assert "digits-cnn v2 (prune)" in exports
    assert "100.00 %" in exports
    bench = section(page, "bench")
    for runtime in ("eager", "torchscript", "onnxruntime"):
        assert f'<td class="l">{runtime}</td>' in bench
    assert "digits-cnn v1 (train)" in bench  # bench rows are named like the report's artifacts


def test_embedded_figures_are_valid_svg_and_png(full_report):
    _, page = full_report
    figures = parsed_svgs(page)
    # curves of the training and of the pruned child's fine-tuning, two confusion matrices,
    # the Pareto front, bench throughput
    assert len(figures) == 6
    assert all(f.tag.endswith("svg") for f in figures)
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=\s]+)", page)
    assert len(pngs) >= 2  # the confusion heat maps (and their colour bars) are rasters inside their SVGs
    for data in pngs:
        image = Image.open(io.BytesIO(base64.b64decode("".join(data.split()))))
        image.verify()
        assert image.size[0] > 0
        assert image.size[1] > 0


def test_page_is_self_contained(full_report):
    _, page = full_report
    assert "<script" not in page
    assert "<link" not in page
    assert "@import" not in page
    without_namespaces = re.sub(r'xmlns(:\w+)?="[^"]*"', "", page)
    assert not re.search(r"(https?:)?//[\w.-]+\.\w+/", without_namespaces)
    assert not re.search(r'(src|href)="(?!#|data:)', without_namespaces)


def test_lineage_tree_puts_the_pruned_child_under_its_parent(quickstart, pruned, full_report):
    report = collect([quickstart.out, pruned.path], evaluate=False)
    assert [node.entry.path for node in report.tree] == [quickstart.artifact.path.resolve()]
    child = report.tree[0].children[0]
    assert child.entry.path == pruned.path.resolve()
    assert child.entry.manifest.lineage.op == "prune"
    lineage = section(full_report[1], "lineage")
    parent_at = lineage.index("digits-cnn v1 (train)")
    nested_at = lineage.index('<ul class="tree">')
    child_at = lineage.index("digits-cnn v2 (prune)")
    assert parent_at < nested_at < child_at
    assert "ratio=0.25" in lineage  # the operation's params beside it


def test_lineage_links_a_parent_exported_after_its_child(tmp_path):
    """Exporting in place changes the parent's digest; the child still finds it."""
    from torchship.testing import tiny_artifact

    parent = tiny_artifact("mlp", path=tmp_path / "parent")
    parent.derive(op="quantize", params={"mode": "dynamic"}).save(tmp_path / "child")
    parity = {
        "file": "weights.safetensors",
        "max_abs_diff": 1e-7,
        "mean_abs_diff": 1e-8,
        "top1_agreement": 1.0,
    }
    parent.with_manifest(exports={"torchscript": parity}).save(tmp_path / "parent")
    report = collect([tmp_path / "parent", tmp_path / "child"], evaluate=False)
    assert len(report.tree) == 1
    child = report.tree[0].children[0]
    assert child.entry.manifest.lineage.op == "quantize"
    assert child.via_pre_export_digest


def test_run_directories_stand_for_their_artifact_and_an_optimize_pick_is_not_doubled(tmp_path):
    from torchship.report.collect import find_sources
    from torchship.testing import tiny_artifact

    tiny_artifact("mlp", path=tmp_path / "pruned" / "artifact")  # compress -o pruned, no log.jsonl
    pick = tiny_artifact("mlp", hidden=[8], path=tmp_path / "opt" / "candidates" / "int8" / "artifact")
    pick.save(tmp_path / "opt" / "artifact")  # optimize -o opt copies its pick here
    (tmp_path / "opt" / "optimize.json").write_text("{}")
    found = find_sources([tmp_path / "pruned", tmp_path / "opt"])
    assert found.artifacts == [tmp_path / "pruned" / "artifact", pick.path.resolve()]
    assert found.optimize == [(tmp_path / "opt" / "optimize.json").resolve()]


def test_child_without_its_parent_says_the_parent_is_missing(tmp_path):
    from torchship.testing import tiny_artifact

    tiny_artifact("mlp").derive(op="prune", params={"ratio": 0.3}).save(tmp_path / "child")
    result = write_report([tmp_path / "child"], tmp_path / "r.html", evaluate=False)
    lineage = next(s for s in result.sections if s.id == "lineage")
    assert any("not among the given artifacts" in note for note in lineage.missing)


def test_artifact_without_metrics_says_what_is_missing(run_cli, tmp_path):
    from torchship.testing import tiny_artifact

    art = tiny_artifact("cnn").with_manifest(metrics={}).save(tmp_path / "bare")
    out = tmp_path / "bare.html"
    code, stdout, stderr = run_cli("report", art.path, "-o", out)
    assert code == 0, stderr
    assert "Traceback" not in stdout + stderr
    assert f"wrote {out}" in stdout
    page = out.read_text(encoding="utf-8")
    assert "tiny-cnn v1 (testing.tiny_artifact)" in section(page, "overview")  # what it has
    expected = {
        "metrics": "records no metrics",
        "curves": "no training curves",
        "confusion": "does not record its dataset",
        "optimize": "no optimize results",
        "bench": "no bench results",
        "exports": "no exports",
    }
    for sid, words in expected.items():
        assert "missing:" in section(page, sid), sid
        assert words in section(page, sid), sid


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p / "nowhere", "does not exist"),
        (lambda p: p, "holds no torchship run, artifact, bench or optimize results"),
    ],
)
def test_unknown_paths_are_one_line_errors(run_cli, tmp_path, make, words):
    code, _, err = run_cli("report", make(tmp_path), "-o", tmp_path / "r.html")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert words in lines[0]
    assert not (tmp_path / "r.html").exists()


def test_bad_bench_file_is_one_line_error(run_cli, quickstart, tmp_path):
    bad = tmp_path / "bench.json"
    bad.write_text("{not json")
    code, _, err = run_cli("report", quickstart.artifact.path, "--bench", bad, "-o", tmp_path / "r.html")
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2, err
    assert len(errors) == 1, err
    assert "is not valid JSON" in errors[0]
    assert "Traceback" not in err


def test_bench_rows_with_skips_and_missing_keys_render(quickstart, tmp_path):
    doc = json.loads((quickstart.out / "bench.json").read_text())
    doc["results"].append(
        {
            "artifact": "other",
            "runtime": "aoti",
            "batch_size": 1,
            "status": "skipped",
            "reason": "cannot load: no aoti export",
        }
    )
    doc["results"].append(
        {"artifact": "other", "runtime": "eager", "batch_size": 1, "status": "ok", "throughput_sps": 10.0}
    )  # no latency, size or load time recorded
    del doc["machine"]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(doc))
    result = write_report([path], tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    bench = section(page, "bench")
    assert "other/aoti: cannot load: no aoti export" in bench
    assert "skipped" in bench
    assert "machine not recorded" in bench
    assert len(re.findall(r"<tr", bench)) == len(doc["results"]) + 1  # header + every row
    assert not next(s for s in result.sections if s.id == "bench").missing


def test_optimize_fixture_table_and_pareto_plot(full_report, optimize_dir):
    _, page = full_report
    opt = section(page, "optimize")
    assert "missing:" not in opt
    names = json.loads((optimize_dir / "optimize.json").read_text())["candidates"]
    for candidate in names:
        assert f'<td class="l">{candidate["name"]}</td>' in opt
    assert re.search(r'<tr class="best"><td class="l">int8-static</td>', opt)  # the picked one
    assert re.search(r'<tr class="dim"><td class="l">prune-0.7</td>', opt)  # outside the budget
    assert "107.4 KiB" in opt
    assert "2.67×" in opt
    (pareto,) = parsed_svgs(opt)
    text = "".join(pareto.itertext())
    assert "picked: int8-static" in text
    assert "accuracy/latency front" in text
    assert "latency p50 (ms)" in text


def test_optimize_file_missing_fields_says_so(tmp_path):
    (tmp_path / "optimize.json").write_text(
        json.dumps(
            {
                "candidates": [
                    {"candidate": "a", "accuracy": 0.9, "latency_ms": 1.0},
                    {"candidate": "b", "accuracy": 0.8, "latency_ms": 2.0},
                    {"candidate": "c", "accuracy": 0.95, "latency_ms": 3.0},
                ],
                "picked": "c",
            }
        )
    )
    doc = read_optimize(tmp_path)
    assert [c["pareto"] for c in doc.candidates] == [True, False, True]  # computed here
    assert [c["picked"] for c in doc.candidates] == [False, False, True]
    assert "size_bytes" in doc.missing
    assert "throughput_sps" in doc.missing
    assert "accuracy" not in doc.missing
    result = write_report([tmp_path / "optimize.json"], tmp_path / "r.html")
    opt = next(s for s in result.sections if s.id == "optimize")
    assert any("'size_bytes'" in note for note in opt.missing)
    assert "computed here" in opt.body


def test_optimize_document_as_torchship_optimize_writes_it(tmp_path):
    """Its shape (compress/optimize.py): baseline first, a failed candidate, verdict and settings."""
    base = {
        "name": "fp32",
        "baseline": True,
        "status": "ok",
        "runtime": "onnxruntime",
        "accuracy": 0.975,
        "latency_p50_ms": 0.05,
        "throughput_sps": 640000.0,
        "size_bytes": 92_000,
        "pareto": True,
        "picked": False,
    }
    int8 = {
        "name": "int8-dynamic",
        "status": "ok",
        "reason": None,
        "runtime": "onnxruntime",
        "accuracy": 0.974,
        "latency_p50_ms": 0.03,
        "throughput_sps": 1.0e6,
        "size_bytes": 41_000,
        "accuracy_drop": 0.001,
        "speedup": 1.6,
        "faster": True,
        "within_budget": True,
        "pareto": True,
        "picked": True,
    }
    failed = {"name": "prune-50", "status": "failed", "reason": "prune needs a conv layer", "picked": False}
    document = {
        "kind": "torchship.optimize",
        "schema": 1,
        "baseline": base,
        "candidates": [base, int8, failed],
        "pareto": ["fp32", "int8-dynamic"],
        "picked": "int8-dynamic",
        "settings": {"objective": "latency", "batch_size": 32, "max_accuracy_drop": 0.01},
        "verdict": "picked int8-dynamic: 1.60x the throughput of fp32 onnxruntime",
    }
    (tmp_path / "optimize.json").write_text(json.dumps(document))
    result = write_report([tmp_path], tmp_path / "r.html")  # found in the directory by its name
    opt = next(s for s in result.sections if s.id == "optimize")
    assert not opt.missing  # the baseline's speed-up is 1 by definition; a failed row lacks figures
    assert "picked int8-dynamic: 1.60x" in opt.body
    assert "objective latency, batch_size 32" in opt.body
    assert '<td class="l">fp32 (baseline)</td><td class="l">onnxruntime</td>' in opt.body
    assert "1.00×" in opt.body
    assert '<tr class="best"><td class="l">int8-dynamic</td>' in opt.body
    assert '<tr class="dim"><td class="l">prune-50</td><td class="l">failed</td>' in opt.body
    assert "prune-50 failed: prune needs a conv layer" in opt.body


def test_pareto_front_keeps_only_undominated_candidates():
    candidates = [
        {"name": "slow-good", "accuracy": 0.99, "latency_p50_ms": 5.0},
        {"name": "fast-ok", "accuracy": 0.95, "latency_p50_ms": 1.0},
        {"name": "dominated", "accuracy": 0.94, "latency_p50_ms": 2.0},
        {"name": "tie-slower", "accuracy": 0.95, "latency_p50_ms": 1.5},
        {"name": "no-latency", "accuracy": 0.999, "latency_p50_ms": None},
    ]
    mark_pareto_front_(candidates)
    assert [c["name"] for c in candidates if c["pareto"]] == ["slow-good", "fast-ok"]


def test_per_class_metrics_match_scikit_learn():
    from sklearn.metrics import precision_recall_fscore_support

    matrix = [[5, 1, 0], [2, 3, 1], [0, 0, 0]]  # class 2 never occurs nor is predicted
    y_true = [t for t, row in enumerate(matrix) for p, n in enumerate(row) for _ in range(n)]
    y_pred = [p for t, row in enumerate(matrix) for p, n in enumerate(row) for _ in range(n)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 2], zero_division=0.0
    )
    rows = Confusion("val", ["a", "b", "c"], matrix, "test").per_class()
    assert [r["support"] for r in rows] == list(support)
    for row, p, r, f in zip(rows, precision, recall, f1, strict=True):
        assert row["precision"] == pytest.approx(p)
        assert row["recall"] == pytest.approx(r)
        assert row["f1"] == pytest.approx(f)


def test_a_model_that_fails_to_evaluate_is_a_gap_not_a_crash(pruned, tmp_path, monkeypatch):
    import torchship.evaluate

    def broken(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\nmore detail")

    monkeypatch.setattr(torchship.evaluate, "evaluate", broken)
    result = write_report([pruned.path], tmp_path / "r.html")
    confusion = next(s for s in result.sections if s.id == "confusion")
    assert confusion.missing == [
        "digits-cnn v2 (prune) stores no evaluation.json and could not be evaluated: "
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied"
    ]


def test_optimize_classifier_judged_by_top1_agreement(tmp_path):
    """A classifier without labelled data: top-1 agreement is the y axis and the front's measure."""

    def row(name, top1, rel, p50, **extra):
        agreement = {"top1_agreement": top1, "max_abs_diff": rel * 3, "max_rel_diff": rel, "samples": 128}
        return {"name": name, "status": "ok", "runtime": "onnxruntime", "accuracy": None,
                "agreement": agreement, "latency_p50_ms": p50, "throughput_sps": 1000 / p50,
                "size_bytes": 1000, "within_budget": True, **extra}  # fmt: skip

    document = {
        "kind": "torchship.optimize",
        "judged_by": "agreement",
        "judgement": "output agreement (no labelled data): top-1 agreement and max |Δ| ...",
        "candidates": [row("fp32", 1.0, 0.0, 2.0, baseline=True), row("int8-dynamic", 0.99, 0.02, 1.0)],
        "picked": "int8-dynamic",
        "verdict": "picked int8-dynamic",
    }
    (tmp_path / "optimize.json").write_text(json.dumps(document))
    doc = read_optimize(tmp_path)
    assert doc.missing == ["pareto"]  # no accuracy expected when judged by agreement
    assert [c["name"] for c in doc.candidates if c["pareto"]] == ["fp32", "int8-dynamic"]
    result = write_report([tmp_path / "optimize.json"], tmp_path / "r.html")
    opt = section(result.path.read_text(encoding="utf-8"), "optimize")
    assert "99.00%" in opt
    assert "2.00%" in opt  # max relative |Δ|
    (svg,) = parsed_svgs(opt)
    text = "".join(svg.itertext())
    assert "top-1 agreement with fp32" in text
    assert "agreement/latency front" in text
    assert "picked: int8-dynamic" in text
