"""What a run shows and writes as it goes: a rich progress bar, a JSONL log, optional TensorBoard."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from torchship.errors import DependencyError
from torchship.output import make_dirs


class RunLog:
    """One JSON line per epoch in ``log.jsonl`` (and scalars to TensorBoard when asked)."""

    def __init__(self, run_dir: Path, tensorboard: bool = False, append: bool = False):
        self.path = run_dir / "log.jsonl"
        make_dirs(run_dir)
        if not append:
            self.path.write_text("")
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise DependencyError(
                    "train.tensorboard needs the tensorboard package",
                    fix="pip install 'torchship[tensorboard]'",
                ) from exc
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.writer.add_scalar(key.replace(".", "/"), value, record["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class EpochProgress:
    """A progress bar per epoch: step, loss, accuracy, samples/s; refreshed at most 10 times a second."""

    def __init__(self, console: Console, enabled: bool):
        self.console = console
        self.enabled = enabled
        self.progress: Progress | None = None
        self.task = None
        self._last_refresh = 0.0

    def start(self, epoch: int, epochs: int, steps: int) -> None:
        # a log gets only the epoch lines: rich prints an empty line for each bar it stops off a terminal
        if not self.enabled or not self.console.is_terminal:
            return
        self.progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=steps, stats="")
        self._last_refresh = 0.0

    def update(self, step: int, stats: Any) -> None:
        """``stats`` is called only when the bar refreshes, so the loop pays for no .item() syncs."""
        if self.progress is None:
            return
        now = time.perf_counter()
        if now - self._last_refresh < 0.1:
            return
        self._last_refresh = now
        self.progress.update(self.task, completed=step, stats=stats())

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
