"""The README's from_model snippet runs as written (in a temporary directory)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def test_readme_from_model_snippet_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    snippet = next(b for b in blocks if "from_model" in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec("from torchship.runtime import load_predictor\n" + snippet, namespace)  # noqa: S102 - our own README
    assert (tmp_path / "runs" / "tiny-bert" / "artifact" / "model.pt2").is_file()
    assert namespace["art"].manifest.signature.input_names == ["input_ids", "attention_mask"]
