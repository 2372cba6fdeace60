"""Per-epoch checkpoints with optimizer, schedule and RNG state, so ``--resume`` continues exactly.

Written atomically (temp file + rename) so a kill mid-write leaves the previous one intact.
Read with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler admits tensors and
plain containers only, so a checkpoint cannot execute code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from torchship.errors import TrainingError
from torchship.output import atomic_path, make_dirs

CHECKPOINT = "last.pt"


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    path = make_dirs(directory) / CHECKPOINT
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(directory: Path) -> dict[str, Any]:
    path = directory / CHECKPOINT
    if not path.is_file():
        raise TrainingError(f"no checkpoint to resume from at {path}", fix="drop --resume to start a new run")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint gets the same advice
        raise TrainingError(
            f"checkpoint {path} cannot be read ({str(exc).splitlines()[0][:120]})",
            fix="delete it and train from scratch, or restore a good copy",
        ) from None


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
