"""Measure what compression changes: parameters, MACs, weight bytes, validation accuracy, and
for a model without labelled data the agreement of its outputs with its fp32 parent's.

Every method measures parent and child the same way in the same run and records both in
the child's lineage (``params.report``), so the before/after table is a manifest read.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from torchship.artifact import Artifact
from torchship.artifact.manifest import Signature
from torchship.data import DataConfig, Dataset, artifact_data, artifact_split, data_config_for
from torchship.errors import DataError, require


@dataclass
class ValData:
    """The validation split an artifact is judged on, normalized as its manifest says."""

    config: DataConfig
    dataset: Dataset
    x: torch.Tensor  # (n, *input.shape)
    y: torch.Tensor  # (n,)


def data_config(artifact: Artifact, data: str | dict[str, Any] | None) -> DataConfig:
    """The artifact's own data config; ``NAME[:PATH]``; or a dict of DataConfig fields over it."""
    if isinstance(data, dict):
        stored = artifact.manifest.data.get("config") or {}
        same = data.get("name") in (None, stored.get("name"))
        return DataConfig.model_validate({**(stored if same else {}), **data})
    return data_config_for(artifact, data)


def load_val(artifact: Artifact, data: str | dict[str, Any] | None) -> ValData:
    """Load the data and check it fits ``artifact`` (shape, classes, labels).

    Raises:
        DataError: The data has another input shape or other labels than the artifact.
    """
    cfg = data_config(artifact, data)
    dataset = artifact_data(artifact, cfg)
    if dataset.labels != artifact.manifest.labels:
        raise DataError(
            f"{artifact.manifest.name} was trained on labels {_short(artifact.manifest.labels)} but dataset "
            f"{dataset.name} has {_short(dataset.labels)}",
            fix="use the artifact's own data (drop --data) or data with the same labels",
        )
    x, y = artifact_split(artifact, dataset, "val")
    return ValData(cfg, dataset, x, y)


def _short(labels: list[str]) -> str:
    return "[" + ", ".join(labels[:5]) + (", ..." if len(labels) > 5 else "") + f"] ({len(labels)})"


@torch.inference_mode()
def val_metrics(model: nn.Module, val: ValData, batch_size: int = 1024) -> dict[str, float]:
    """Accuracy, macro-F1, AUROC and loss of ``model`` on the validation split."""
    from torchship.train.metrics import evaluate_logits

    model.eval()
    values, _ = evaluate_logits(model, val.x, val.y, val.dataset.num_classes, batch_size)
    return values


def count_macs(model: nn.Module, input_shape: list[int]) -> int:
    """Multiply-accumulates of one sample's forward pass (Torch-Pruning's op counter)."""
    tp = require("torch_pruning", "compress")
    example = torch.zeros(1, *input_shape)
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        macs, _ = tp.utils.count_ops_and_params(model.eval(), example)
    return int(macs)


def model_stats(model: nn.Module, input_shape: list[int], metrics: dict[str, float]) -> dict[str, Any]:
    """The figures a before/after table shows for one model."""
    state = model.state_dict()
    params = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    return {
        "params": params,
        "nonzero_params": nonzero,
        "macs": count_macs(model, input_shape),
        "weights_bytes": sum(t.numel() * t.element_size() for t in state.values()),
        "val_accuracy": float(metrics["accuracy"]),
    }


def weights_file_bytes(artifact: Artifact) -> int | None:
    """Size on disk of a saved artifact's weights.safetensors."""
    if artifact.path is None:
        return None
    return (artifact.path / "weights.safetensors").stat().st_size


JUDGE_ROWS = 64  # generated rows per size an unlabelled model's candidates are compared on (two sizes)
Feeds = dict[str, np.ndarray]


def judge_feeds(signature: Signature, rows: int = JUDGE_ROWS) -> list[Feeds]:
    """Two seeded sets of inputs generated from ``signature``: its example sizes and about half of them.

    The inputs a model without labelled data is judged on (valid token ids, masks of ones,
    standard-normal floats), so a candidate is compared with its fp32 parent at two sizes of
    every dynamic dim.
    """
    from torchship.runtime.feeds import example_feeds

    halves = {d: max(2, s // 2 + 1) for d, s in signature.dims.items()}
    return [example_feeds(signature, batch=rows, dims=d, seed=seed) for seed, d in enumerate((None, halves))]


def output_agreement(
    signature: Signature, task: str, reference: list[Feeds], candidate: list[Feeds]
) -> dict[str, Any]:
    """How far ``candidate``'s outputs are from ``reference``'s, output by output.

    max |Δ| and max |Δ| relative to the output's largest reference value, per output and
    over all; a classifier also gets the top-1 agreement of its first output.
    """
    from torchship.export.signed import compare_outputs

    record = compare_outputs(signature, task, reference, candidate)
    for name, figures in record["outputs"].items():
        scale = max(float(np.max(np.abs(np.asarray(r[name], np.float64)), initial=0.0)) for r in reference)
        figures["max_rel_diff"] = figures["max_abs_diff"] / max(scale, 1e-12)
    record["max_rel_diff"] = max(v["max_rel_diff"] for v in record["outputs"].values())
    if task != "classification":  # top-1 of a multilabel/regression output means nothing
        record.pop("top1_agreement", None)
    return record
