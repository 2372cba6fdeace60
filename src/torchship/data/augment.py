"""Batch augmentations in torch: random crop with padding, horizontal flip, rotation, noise.

Each takes a generator, so a batch's augmentation is a pure function of (seed, epoch, step).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

from torchship.data.config import AugmentConfig


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Apply the configured augmentations to a batch of normalized images (n, c, h, w)."""
    if x.dim() != 4:
        return x + cfg.noise_std * torch.randn(x.shape, generator=gen) if cfg.noise_std else x
    if cfg.crop_padding:
        x = random_crop(x, cfg.crop_padding, gen)
    if cfg.hflip:
        flip = torch.rand(x.shape[0], generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    if cfg.rotate_deg:
        x = random_rotate(x, cfg.rotate_deg, gen)
    if cfg.noise_std:
        x = x + cfg.noise_std * torch.randn(x.shape, generator=gen)
    return x


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to (h, w) at a random offset per sample."""
    # x: (n, c, h, w)
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w)
    batch = torch.arange(n).view(n, 1, 1, 1)
    channels = torch.arange(x.shape[1]).view(1, -1, 1, 1)
    return padded[batch, channels, rows, cols]


def random_rotate(x: torch.Tensor, max_deg: float, gen: torch.Generator) -> torch.Tensor:
    """Rotate each sample by a uniform angle in [-max_deg, max_deg] (bilinear, zero fill)."""
    n = x.shape[0]
    angles = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(max_deg)
    cos, sin = angles.cos(), angles.sin()
    zeros = torch.zeros(n)
    theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
