"""Distributed data parallel through torch.distributed (gloo on CPU, nccl on GPU).

A run is distributed when torchrun (or ``torchship train --nproc-per-node N``, which calls
torchrun) sets ``WORLD_SIZE`` > 1. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        from torchship.errors import ConfigError

        if not torch.cuda.is_available():
            raise ConfigError(
                "train.device is cuda but no CUDA device is available", fix="use train.device=cpu"
            )
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_distributed(device_preference: str) -> DistContext:
    """Join the process group torchrun describes in the environment, or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if world_size <= 1:
        return DistContext(device=device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device)


def all_reduce_sum(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    if ctx.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_flag(ctx: DistContext, flag: bool) -> bool:
    """Rank 0's decision (e.g. early stop) for every rank."""
    if not ctx.enabled:
        return flag
    value = torch.tensor([1 if flag else 0], device=ctx.device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc_per_node: int, argv: list[str]) -> None:
    """Re-run ``torchship ARGV`` under torchrun with ``nproc_per_node`` local processes."""
    from torch.distributed.run import main as torchrun_main

    torchrun_main(["--standalone", f"--nproc-per-node={nproc_per_node}", "-m", "torchship", *argv])
