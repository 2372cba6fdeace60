import pytest
import torch

from torchship.artifact import Artifact
from torchship.compress import DistillConfig, distill
from torchship.compress.distill import DistillLoss
from torchship.errors import DataError, ModelError
from torchship.testing import tiny_artifact

from .conftest import DIGITS, checksums


def test_distill_with_comparison_records_teacher_and_both_accuracies(bn_cnn_parent, tmp_path):
    before = checksums(bn_cnn_parent.path)
    cfg = DistillConfig(
        student="mlp",
        student_kwargs={"hidden": [16]},
        compare=True,
        data=DIGITS,
        train={"epochs": 1, "lr": 3e-3},
    )
    child = distill(bn_cnn_parent, cfg, out=tmp_path / "student")
    lineage = Artifact.load(child.path).manifest.lineage
    assert lineage.op == "distill"
    assert lineage.parent == bn_cnn_parent.digest
    assert lineage.params["teacher"]["digest"] == bn_cnn_parent.digest
    report = lineage.params["report"]
    assert {"teacher", "student without teacher", "distilled student"} <= set(report)
    assert report["distilled student"]["val_accuracy"] == pytest.approx(
        child.manifest.metrics["val"]["accuracy"]
    )
    assert report["distilled student"]["params"] < report["teacher"]["params"]
    assert child.manifest.architecture.name == "mlp"
    assert Artifact.load(child.path).build_model()(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
    assert checksums(bn_cnn_parent.path) == before


def test_loss_is_cross_entropy_at_alpha_zero_and_zero_for_a_perfect_copy():
    teacher = torch.nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    logits = teacher(x).detach()
    hard_only = DistillLoss(teacher, temperature=4.0, alpha=0.0)(logits, x, y)
    assert torch.allclose(hard_only, torch.nn.functional.cross_entropy(logits, y))
    assert DistillLoss(teacher, temperature=4.0, alpha=1.0)(logits, x, y).abs() < 1e-6


def test_teacher_whose_labels_differ_from_the_data(tmp_path):
    teacher = tiny_artifact("mlp", num_classes=3, path=tmp_path / "teacher")
    with pytest.raises(DataError, match="trained on labels") as info:
        distill(teacher, DistillConfig(student="mlp", data=DIGITS), out=tmp_path / "x")
    assert "\n" not in str(info.value)
    with pytest.raises(ModelError, match="unknown model 'vgg'"):
        distill(teacher, DistillConfig(student="vgg", data=DIGITS), out=tmp_path / "x")
