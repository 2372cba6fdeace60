"""Fixtures for the import tests: a saved BERT state dict and a two-output regression net."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
# byo_nets/bert_factory here; serve_helpers and triton_checks beside
for folder in (HERE, HERE.parent / "serve", HERE.parent / "export"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture(scope="session")
def bert_weights(tmp_path_factory) -> Path:
    """state dict of a seeded tiny BERT classifier, saved with torch.save (a .bin, as HF does)."""
    from bert_factory import build_bert

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bert") / "pytorch_model.bin"
    torch.save(build_bert().state_dict(), path)
    return path


@pytest.fixture(scope="session")
def bert_artifact(bert_weights, tmp_path_factory) -> Path:
    """torchship import of the BERT weights + factory: OUT/artifact."""
    from torchship.importer import import_source

    out = tmp_path_factory.mktemp("bert-run")
    import_source(
        bert_weights,
        out / "artifact",
        class_path="bert_factory:build_bert",
        allow_import=["bert_factory:build_bert"],
        kwargs={"num_labels": 3},
        inputs=["input_ids:int64:batch,seq=16:0-1000", "attention_mask:int64:batch,seq=16"],
        labels=["neg", "neutral", "pos"],
        name="tiny-bert",
    )
    return out / "artifact"


@pytest.fixture
def onnx_only(tmp_path):
    """An ONNX-only artifact imported from a plain .onnx file of the two-output regression net."""
    from byo_nets import TwoHeads

    from torchship.importer import import_source

    torch.manual_seed(0)
    torch.onnx.export(
        TwoHeads(),
        (torch.randn(2, 6),),
        str(tmp_path / "reg.onnx"),
        input_names=["x"],
        output_names=["mean", "scale"],
        dynamic_axes={"x": {0: "N"}},
        dynamo=False,
    )
    return import_source(tmp_path / "reg.onnx", tmp_path / "run" / "artifact", task="regression")
