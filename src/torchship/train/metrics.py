"""Classification metrics through torchmetrics (synced across DDP ranks by torchmetrics itself)."""

from __future__ import annotations

import warnings

import torch
import torchmetrics
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)


class ClassificationMetrics:
    """Accumulate logits/targets batch by batch; ``compute`` gives loss, accuracy, macro-F1, AUROC.

    Example:
        >>> m = ClassificationMetrics(num_classes=3)
        >>> m.update(torch.tensor([[2.0, 0.1, 0.1], [0.1, 2.0, 0.1]]), torch.tensor([0, 1]))
        >>> m.compute()["accuracy"]
        1.0
    """

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", confusion: bool = False):
        self.num_classes = num_classes
        metrics: dict[str, torchmetrics.Metric] = {
            "accuracy": MulticlassAccuracy(num_classes, average="micro"),
            "f1_macro": MulticlassF1Score(num_classes, average="macro"),
            "auroc": MulticlassAUROC(num_classes, average="macro", thresholds=None),
            "loss": torchmetrics.MeanMetric(),
        }
        if confusion:
            metrics["confusion"] = MulticlassConfusionMatrix(num_classes)
        self.metrics = torchmetrics.MetricCollection(metrics, compute_groups=False).to(device)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        # logits: (batch, classes), target: (batch,)
        logits = logits.float()
        loss = torch.nn.functional.cross_entropy(logits, target, reduction="none")
        for name, metric in self.metrics.items():
            if name == "loss":
                metric.update(loss)
            elif name == "auroc":
                metric.update(logits.softmax(dim=1), target)
            else:
                metric.update(logits, target)

    def compute(self) -> dict[str, float]:
        with warnings.catch_warnings():
            # AUROC warns for a class absent from a small validation split; the value is still defined
            warnings.simplefilter("ignore", UserWarning)
            values = self.metrics.compute()
        return {k: float(v) for k, v in values.items() if k != "confusion"}

    def confusion_matrix(self) -> list[list[int]]:
        return self.metrics["confusion"].compute().long().tolist()

    def reset(self) -> None:
        self.metrics.reset()


@torch.inference_mode()
def evaluate_logits(
    forward,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
    confusion: bool = False,
) -> tuple[dict[str, float], list[list[int]] | None]:
    """Run ``forward`` over (x, y) in batches and compute every metric (and the confusion matrix)."""
    metrics = ClassificationMetrics(num_classes, device=device, confusion=confusion)
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        yb = y[start : start + batch_size].to(device)
        metrics.update(forward(xb), yb)
    values = metrics.compute()
    return values, (metrics.confusion_matrix() if confusion else None)
