"""Optimizers and learning-rate schedules built from config; the schedule steps per batch."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from torchship.train.config import OptimConfig, ScheduleConfig


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    if cfg.name == "adam":
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    if cfg.name == "adamw":
        return torch.optim.AdamW(
            params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    if cfg.name == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(
        params, lr=cfg.lr, momentum=cfg.momentum, eps=cfg.eps, weight_decay=cfg.weight_decay
    )


class Schedule:
    """One learning-rate schedule, stepped after every optimizer step (and, for plateau, every epoch).

    Warm-up multiplies the learning rate linearly from ~0 to 1 over ``warmup_epochs``; the
    main schedule then runs over the remaining steps. Epoch-based settings (``step_size``,
    exponential ``gamma`` per epoch) are converted to steps so a partial epoch is exact.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int, epochs: int
    ):
        self.cfg = cfg
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.total_steps = self.steps_per_epoch * epochs
        self.warmup_steps = 0 if cfg.name == "onecycle" else round(cfg.warmup_epochs * self.steps_per_epoch)
        self.step_count = 0
        self.plateau_scale = 1.0
        self.plateau_best: float | None = None
        self.plateau_bad_epochs = 0
        self._apply()

    def factor(self, step: int) -> float:
        cfg = self.cfg
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        t = step - self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        if cfg.name == "step":
            return cfg.gamma ** (t // (cfg.step_size * self.steps_per_epoch))
        if cfg.name == "exponential":
            return cfg.gamma ** (t / self.steps_per_epoch)
        if cfg.name == "cosine":
            floor = cfg.min_lr / self.base_lrs[0] if self.base_lrs[0] else 0.0
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, span) / span))
        if cfg.name == "onecycle":
            # torch's OneCycleLR shape: 30 % cosine ramp from lr/25 to lr, then cosine down to lr/1e4
            peak = max(1, int(0.3 * span))
            if t < peak:
                return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * t / peak))
            rest = max(1, span - peak)
            return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * min(t - peak, rest) / rest))
        if cfg.name == "plateau":
            return self.plateau_scale
        return 1.0

    def step_batch(self) -> None:
        self.step_count += 1
        self._apply()

    def step_epoch(self, metrics: dict[str, float]) -> None:
        if self.cfg.name != "plateau":
            return
        value = metrics.get(self.cfg.plateau_metric)
        if value is None:
            return
        lower_is_better = self.cfg.plateau_metric.endswith("loss")
        better = self.plateau_best is None or (
            value < self.plateau_best if lower_is_better else value > self.plateau_best
        )
        if better:
            self.plateau_best, self.plateau_bad_epochs = value, 0
        else:
            self.plateau_bad_epochs += 1
            if self.plateau_bad_epochs > self.cfg.plateau_patience:
                self.plateau_scale *= self.cfg.gamma
                self.plateau_bad_epochs = 0
        self._apply()

    def _apply(self) -> None:
        scale = self.factor(self.step_count)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=False):
            group["lr"] = base * scale

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        return {
            "step_count": self.step_count,
            "plateau_scale": self.plateau_scale,
            "plateau_best": self.plateau_best,
            "plateau_bad_epochs": self.plateau_bad_epochs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self.plateau_scale = float(state["plateau_scale"])
        self.plateau_best = state["plateau_best"]
        self.plateau_bad_epochs = int(state["plateau_bad_epochs"])
        self._apply()
