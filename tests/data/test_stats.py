"""reference_stats: the manifest's Reference fields, per channel or feature."""

from __future__ import annotations

import pytest
import torch

from torchship.artifact.manifest import Reference
from torchship.data import DataConfig, Split, load_data, reference_stats


def test_image_stats_per_channel():
    gen = torch.Generator().manual_seed(0)
    # x: (1000, 2, 4, 4) with channel 0 ~ N(0, 1) and channel 1 ~ N(3, 2)
    x = torch.randn(1000, 2, 4, 4, generator=gen) * torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    x += torch.tensor([0.0, 3.0]).view(1, 2, 1, 1)
    stats = reference_stats(
        Split(x, torch.randint(0, 3, (1000,), generator=gen)), num_classes=4, max_samples=500
    )
    assert stats["n"] == 500
    assert stats["input_mean"] == pytest.approx([0.0, 3.0], abs=0.05)
    assert stats["input_std"] == pytest.approx([1.0, 2.0], abs=0.05)
    assert stats["input_quantiles"]["p50"] == pytest.approx([0.0, 3.0], abs=0.05)
    assert stats["input_quantiles"]["p99"] == pytest.approx([2.326, 3 + 2 * 2.326], abs=0.1)
    assert len(stats["class_freq"]) == 4
    assert stats["class_freq"][3] == 0.0
    assert sum(stats["class_freq"]) == pytest.approx(1.0)
    Reference.model_validate(stats)  # exactly the manifest's fields


def test_feature_stats_per_feature_and_digits():
    x = torch.stack([torch.arange(100.0), -torch.arange(100.0)], 1)
    stats = reference_stats(Split(x, torch.zeros(100, dtype=torch.long)), num_classes=1)
    assert stats["input_quantiles"]["p01"] == pytest.approx([0.99, -98.01])
    digits = load_data(DataConfig(name="digits", limit=300))
    stats = reference_stats(digits.train, digits.num_classes)
    assert stats["input_mean"] == pytest.approx([0.0], abs=1e-5)
    assert len(stats["input_quantiles"]["p99"]) == 1


def test_large_images_are_subsampled_for_quantiles():
    x = torch.zeros(64, 1, 128, 128)
    x[:, :, :, 64:] = 1.0
    stats = reference_stats(Split(x, torch.zeros(64, dtype=torch.long)), num_classes=1)
    assert stats["input_quantiles"]["p01"] == [0.0]
    assert stats["input_quantiles"]["p99"] == [1.0]
