"""Knowledge distillation: train a small student to match a teacher artifact's soft predictions.

The loss is ``alpha * T² * KL(teacher_T ‖ student_T) + (1 - alpha) * CE(student, labels)``
where ``_T`` means softmax at temperature ``T`` (Hinton et al., 2015; the ``T²`` keeps the
soft term's gradients on the scale of the hard one). It plugs into the training engine's
``loss_fn`` hook; the teacher stays in eval mode and runs without gradients. With
``compare=True`` the same student is also trained without a teacher, from the same
initialisation on the same budget, and both accuracies go into the lineage.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field, PositiveFloat
from rich.console import Console
from torch import nn

from torchship.artifact import Artifact
from torchship.compress.base import Finetune, Strict, check_out, register
from torchship.compress.finetune import finetune, work_dir
from torchship.compress.measure import ValData, load_val, model_stats, val_metrics
from torchship.data import load_data
from torchship.data.preprocess import renormalize
from torchship.models import zoo


class DistillTrain(Finetune):
    """The student's training budget (a student starts from scratch, so more than a fine-tune)."""

    epochs: int = Field(default=10, ge=1)
    lr: PositiveFloat = 3e-3


class DistillConfig(Strict):
    """The student to train, the distillation loss, and the training budget."""

    student: str = Field(default="cnn", description="zoo model name of the student")
    student_kwargs: dict[str, Any] = Field(default_factory=dict)
    temperature: PositiveFloat = 4.0
    alpha: float = Field(default=0.7, ge=0.0, le=1.0, description="weight of the soft (teacher) term")
    compare: bool = Field(default=False, description="also train the student without a teacher, same budget")
    data: str | dict[str, Any] | None = None
    train: DistillTrain = Field(default_factory=DistillTrain)


class DistillLoss:
    """``loss_fn(student_logits, x, y)`` for the training engine; holds the frozen teacher.

    Args:
        adapt: Maps the batch as the data normalizes it to the teacher's normalization.
    """

    def __init__(self, teacher: nn.Module, temperature: float, alpha: float, adapt=None):
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature, self.alpha = temperature, alpha
        self.adapt = adapt

    def __call__(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # logits: (batch, classes) of the student, x: (batch, *input.shape)
        with torch.no_grad():
            teacher_logits = self.teacher.to(x.device)(self.adapt(x) if self.adapt else x).float()
        t = self.temperature
        soft = F.kl_div(
            F.log_softmax(logits / t, dim=1),
            F.log_softmax(teacher_logits / t, dim=1),
            log_target=True,
            reduction="batchmean",
        ) * (t * t)
        hard = F.cross_entropy(logits, y)
        return self.alpha * soft + (1.0 - self.alpha) * hard


@register("distill", DistillConfig)
def distill(
    teacher: Artifact,
    cfg: DistillConfig | None = None,
    *,
    out: str | Path,
    allow_import: Iterable[str] = (),
    console: Console | None = None,
) -> Artifact:
    """Train ``cfg.student`` on the teacher's data with the teacher's soft labels; save the student.

    Raises:
        DataError: The data's labels or input shape differ from the teacher's.
        ModelError: The student is not a zoo model, or does not fit the data.
    """
    cfg = cfg or DistillConfig()
    target = check_out(out, teacher)
    zoo.get(cfg.student)  # an unknown student fails here, listing the choices
    val = load_val(teacher, cfg.data)
    shape = teacher.manifest.input.shape
    teacher_model = teacher.build_model(allow_import)
    teacher_stats = model_stats(teacher_model, shape, val_metrics(teacher_model, val))
    loss_fn = DistillLoss(teacher_model, cfg.temperature, cfg.alpha, _adapter(val, teacher))
    architecture = {"name": cfg.student, "kwargs": dict(cfg.student_kwargs)}
    params = cfg.model_dump(mode="json") | {
        "teacher": {"digest": teacher.digest, "name": teacher.manifest.name}
    }
    report: dict[str, Any] = {"teacher": teacher_stats}
    with work_dir(cfg.train) as root:
        if cfg.compare:
            baseline = finetune(
                None,
                architecture,
                parent=teacher,
                data=val.config,
                settings=cfg.train,
                epochs=cfg.train.epochs,
                out=root / "without-teacher",
                op="train",
                params=params | {"teacher": None},
                console=console,
            )
            report["student without teacher"] = _stats(baseline, val)
        student = finetune(
            None,
            architecture,
            parent=teacher,
            data=val.config,
            settings=cfg.train,
            epochs=cfg.train.epochs,
            out=root / "distilled",
            op="distill",
            params=params,
            loss_fn=loss_fn,
            console=console,
        )
        report["distilled student"] = _stats(student, val)
        metrics = {**student.manifest.metrics, "val": report["distilled student"].pop("_val")}
        report.get("student without teacher", {}).pop("_val", None)
        lineage = student.manifest.lineage.model_dump(mode="json")
        lineage["params"] = params | {"report": report}
        return student.with_manifest(lineage=lineage, metrics=metrics).save(target)


def _stats(artifact: Artifact, val: ValData) -> dict[str, Any]:
    model = artifact.build_model()
    metrics = val_metrics(model, val)
    return model_stats(model, artifact.manifest.input.shape, metrics) | {"_val": metrics}


def _adapter(val: ValData, teacher: Artifact):
    """Map student batches (the data's own preprocessing, as training measures it) to the teacher's."""
    source, target = load_data(val.config).input, val.dataset.input
    if all(source[k] == target[k] for k in ("mean", "std", "scale")):
        return None
    return lambda x: renormalize(x, source, target)
