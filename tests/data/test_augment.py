"""Each augmentation on its own, on batches whose content is easy to predict."""

from __future__ import annotations

import torch

from torchship.data import AugmentConfig
from torchship.data.augment import augment_batch, random_crop, random_rotate


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_crop_shifts_content_and_pads_with_zeros():
    # x: (8, 2, 5, 5) of ones: a shifted crop exposes zero padding at one edge
    x = torch.ones(8, 2, 5, 5)
    out = random_crop(x, 2, _gen())
    assert out.shape == x.shape
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert (out == 0).any()
    assert torch.equal(out[:, 0], out[:, 1])  # one offset per sample, shared by its channels


def test_hflip_mirrors_about_half_the_batch():
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(200, 1, 3, 4)
    out = augment_batch(x, AugmentConfig(hflip=True), _gen())
    flipped = (out[:, 0, 0, 0] == 3).sum().item()
    assert 60 < flipped < 140
    assert torch.equal(out[out[:, 0, 0, 0] == 3], x.flip(-1)[: int(flipped)])


def test_zero_rotation_is_identity_and_rotation_keeps_the_centre():
    x = torch.rand(4, 3, 9, 9, generator=_gen(1))
    assert torch.allclose(random_rotate(x, 1e-6, _gen()), x, atol=1e-4)
    out = random_rotate(x, 30, _gen())
    assert out.shape == x.shape
    assert not torch.allclose(out, x)
    assert torch.allclose(out[:, :, 4, 4], x[:, :, 4, 4], atol=1e-4)


def test_noise_has_the_asked_spread():
    out = augment_batch(torch.zeros(64, 1, 8, 8), AugmentConfig(noise_std=0.5), _gen())
    assert abs(out.std().item() - 0.5) < 0.05
