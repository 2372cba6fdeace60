"""``torchship report`` over an optimize run judged by output agreement (an imported regression)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from byo_nets import regression_artifact

from torchship.compress.optimize import OptimizeConfig, optimize
from torchship.report import read_optimize, write_report

FAST = {"warmup": 1, "min_iterations": 3, "min_time_s": 0.0, "max_time_s": 0.3, "rounds": 1}


def section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', page, flags=re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def test_report_shows_an_optimize_run_judged_by_agreement(tmp_path):
    _, art = regression_artifact(tmp_path / "reg" / "artifact")
    cfg = OptimizeConfig(recipes=["int8-dynamic"], timing=FAST, max_relative_diff=1.0)
    run = optimize(art, cfg, out=tmp_path / "opt" / "artifact")
    doc = read_optimize(run.out)
    assert doc.by_agreement
    assert "accuracy" not in doc.missing
    result = write_report([tmp_path / "reg", run.out / "optimize.json"], tmp_path / "r.html")
    page = result.path.read_text(encoding="utf-8")
    opt = section(page, "optimize")
    assert "no &#x27;accuracy&#x27;" not in opt
    assert "no 'accuracy'" not in opt
    assert "missing:" not in opt, opt
    assert "<th>max |Δ| rel</th>" in opt
    assert "<th>top-1 agreement</th>" in opt
    assert "<th>accuracy</th>" not in opt
    assert "judged by output agreement (no labelled data)" in opt
    assert '<td class="l">fp32 (baseline)</td>' in opt or "(baseline)" in opt
    assert "0.00%" in opt  # the reference's max relative |Δ| against itself
    (svg,) = re.findall(r"<svg\b.*?</svg>", opt, flags=re.S)
    text = "".join(ET.fromstring(svg).itertext())
    assert "max relative |Δ| vs fp32" in text
    assert "agreement vs latency" in text
    # the imported artifact's signature in the overview: named outputs, named dims
    overview = section(page, "overview")
    assert "program only · regression · input float32[batch, 6] -&gt; mean" in overview, overview
