"""The training loop: validate config -> build parts -> run epochs -> save the artifact.

Reads top to bottom. Everything the loop needs to continue after a kill (model, optimizer,
schedule, RNG, best weights, early-stopping state, history) is checkpointed every epoch;
the data order is a pure function of (seed, epoch), so a resumed run is bit-identical.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from rich.console import Console
from torch import nn

from torchship.artifact import Artifact
from torchship.data import Dataset, Split, load_data, make_loader, reference_stats
from torchship.data.stats import prediction_stats
from torchship.errors import ModelError, TrainingError
from torchship.models import build_model
from torchship.output import write_atomic
from torchship.train import distributed as dist_
from torchship.train.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from torchship.train.config import TrainConfig
from torchship.train.metrics import evaluate_logits
from torchship.train.optim import Schedule, build_optimizer
from torchship.train.progress import EpochProgress, RunLog


class Callback:
    """Hooks into the loop; the base class does nothing."""

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        """Called after an epoch's checkpoint is written (rank 0 only)."""


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    allow_import: Iterable[str] = (),
    callbacks: Sequence[Callback] = (),
    console: Console | None = None,
    model: nn.Module | None = None,
    architecture: dict[str, Any] | None = None,
    loss_fn: LossFn | None = None,
    parent: Artifact | None = None,
    op: str = "train",
    params: dict[str, Any] | None = None,
    data: Dataset | None = None,
) -> Artifact | None:
    """Train the configured model and write ``<cfg.out>/artifact``; returns it (None on ranks > 0).

    Stages that fine-tune (prune, distill, quantization-aware training) pass their own
    ``model`` with the ``architecture`` that rebuilds it, optionally a ``loss_fn(logits, x, y)``
    replacing cross-entropy, and the ``parent`` artifact with the ``op``/``params`` to record
    in the child's lineage. ``data`` replaces loading ``cfg.data`` (a federated client
    passes its partition, normalized as the global model expects).

    Raises:
        TrainingError: a non-finite loss (the last good checkpoint is kept) or an unusable checkpoint.
        ModelError: the model does not accept the data's inputs.
    """
    console = console or Console(stderr=True)
    ctx = dist_.init_distributed(cfg.train.device)
    try:
        custom = _Custom(model, architecture, loss_fn, parent, op, params, data)
        artifact = _Run(cfg, ctx, tuple(allow_import), callbacks, console, custom).run(resume)
        # rank 0 still writes the artifact when the others finish: no rank may tear the process
        # group down under it (a rank leaving early aborted in gloo's teardown, about 1 run in 6)
        dist_.barrier(ctx)
        return artifact
    finally:
        dist_.shutdown(ctx)


@dataclass
class _Custom:
    """What a compressing stage substitutes for the config's model, loss and lineage."""

    model: nn.Module | None = None
    architecture: dict[str, Any] | None = None
    loss_fn: LossFn | None = None
    parent: Artifact | None = None
    op: str = "train"
    params: dict[str, Any] | None = None
    data: Dataset | None = None


class _Run:
    def __init__(
        self,
        cfg: TrainConfig,
        ctx: dist_.DistContext,
        allow_import: tuple[str, ...],
        callbacks: Sequence[Callback],
        console: Console,
        custom: _Custom,
    ):
        self.cfg, self.ctx, self.callbacks, self.console, self.custom = cfg, ctx, callbacks, console, custom
        self.run_dir = Path(cfg.out)
        self.ckpt_dir = self.run_dir / "checkpoints"
        _set_threads(cfg, ctx)
        torch.manual_seed(cfg.train.seed)
        self.data: Dataset = custom.data if custom.data is not None else load_data(cfg.data)
        if custom.model is not None:
            if custom.architecture is None:
                raise ValueError("train(model=...) needs the architecture that rebuilds it")
            self.architecture, model = custom.architecture, custom.model
        else:
            self.architecture = _architecture(cfg, self.data)
            model = build_model(self.architecture, allow_import=allow_import, init=cfg.model.init)
        _check_fits(model, self.data, self.architecture)
        self.model = model.to(ctx.device)
        self.net: nn.Module = self.model
        if ctx.enabled:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        loop = cfg.train
        self.loader = make_loader(
            self.data.train,
            loop.batch_size,
            shuffle=True,
            seed=loop.seed,
            augment=cfg.data.augment,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        self.optimizer = build_optimizer(self.model, cfg.optim)
        steps = math.ceil(len(self.loader) / loop.accumulate)
        self.schedule = Schedule(self.optimizer, cfg.schedule, steps, loop.epochs)
        self.history: list[dict[str, Any]] = []
        self.best = {"value": None, "epoch": 0, "state": None}
        self.stop = {"best": None, "bad_epochs": 0}
        self.start_epoch = 1

    # ------------------------------------------------------------------ the run
    def run(self, resume: bool) -> Artifact | None:
        cfg, ctx = self.cfg, self.ctx
        if resume:
            self._restore(load_checkpoint(self.ckpt_dir))
        elif ctx.is_main and (self.ckpt_dir / "last.pt").exists():
            self.console.print(
                f"[yellow]starting over in {self.run_dir} (pass --resume to continue the old run)"
            )
        log = RunLog(self.run_dir, cfg.train.tensorboard, append=resume) if ctx.is_main else None
        progress = EpochProgress(self.console, cfg.train.progress and ctx.is_main)
        started = time.perf_counter()
        try:
            for epoch in range(self.start_epoch, cfg.train.epochs + 1):
                record = self._epoch(epoch, progress)
                self.history.append(record)
                improved = self._track_best(record)
                early = self._early_stop(record)
                if ctx.is_main:
                    self._save_checkpoint(epoch)
                    log.write(record)
                    self._print_epoch(record, improved)
                    for cb in self.callbacks:
                        cb.on_epoch_end(epoch, record)
                if dist_.broadcast_flag(ctx, early):
                    if ctx.is_main:
                        self.console.print(
                            f"early stop: {cfg.train.early_stop.metric} did not improve "
                            f"for {cfg.train.early_stop.patience} epochs"
                        )
                    break
        finally:
            progress.stop()
            if log is not None:
                log.close()
        return self._finish(time.perf_counter() - started)

    def _epoch(self, epoch: int, progress: EpochProgress) -> dict[str, Any]:
        loop = self.cfg.train
        self.net.train()
        self.loader.set_epoch(epoch)
        steps = len(self.loader)
        progress.start(epoch, loop.epochs, steps)
        loss_sum = torch.zeros((), device=self.ctx.device)
        correct = torch.zeros((), device=self.ctx.device, dtype=torch.long)
        seen = 0
        t0 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        for step, (x, y) in enumerate(self.loader, start=1):
            x, y = x.to(self.ctx.device, non_blocking=True), y.to(self.ctx.device, non_blocking=True)
            with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=loop.bf16):
                logits = self.net(x)
            if self.custom.loss_fn is not None:
                loss = self.custom.loss_fn(logits.float(), x, y)
            else:
                loss = F.cross_entropy(logits.float(), y, label_smoothing=loop.label_smoothing)
            if loop.l1:
                loss = loss + loop.l1 * sum(p.abs().sum() for p in self.model.parameters() if p.dim() > 1)
            if not bool(torch.isfinite(loss.detach())):
                raise TrainingError(
                    f"loss became {loss.item()} at epoch {epoch} step {step}",
                    fix="lower optim.lr or set train.grad_clip; "
                    f"the last good checkpoint is kept in {self.ckpt_dir}",
                )
            (loss / loop.accumulate).backward()
            if step % loop.accumulate == 0 or step == steps:
                if loop.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), loop.grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.schedule.step_batch()
            n = y.shape[0]
            seen += n
            loss_sum += loss.detach() * n
            correct += (logits.detach().argmax(dim=1) == y).sum()
            progress.update(step, lambda s=loss_sum, c=correct, n=seen: _bar_stats(s, c, n, t0))
        train_s = time.perf_counter() - t0
        progress.stop()
        totals = dist_.all_reduce_sum(
            self.ctx,
            torch.stack(
                [
                    loss_sum.double(),
                    correct.double(),
                    torch.tensor(float(seen), device=loss_sum.device, dtype=torch.float64),
                ]
            ),
        )
        record: dict[str, Any] = {
            "epoch": epoch,
            "lr": self.schedule.lr,
            "train.loss": float(totals[0] / totals[2]),
            "train.accuracy": float(totals[1] / totals[2]),
            "samples_per_s": float(totals[2]) / train_s,
            "epoch_time_s": train_s,
        }
        val = self._evaluate(self.data.val)
        record.update({f"val.{k}": v for k, v in val.items()})
        self.schedule.step_epoch(record)
        return record

    def _evaluate(
        self, split: Split, confusion: bool = False
    ) -> tuple[dict[str, float], Any] | dict[str, float]:
        """Metrics on ``split``, each rank taking every world_size-th sample; torchmetrics syncs them."""
        self.model.eval()
        x, y = split.x[self.ctx.rank :: self.ctx.world_size], split.y[self.ctx.rank :: self.ctx.world_size]
        with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.cfg.train.bf16):
            values, matrix = evaluate_logits(
                self.model,
                x,
                y,
                self.data.num_classes,
                self.cfg.train.eval_batch_size,
                self.ctx.device,
                confusion,
            )
        self.model.train()
        return (values, matrix) if confusion else values

    # ------------------------------------------------------------------ bookkeeping
    def _track_best(self, record: dict[str, Any]) -> bool:
        metric = self.cfg.train.best_metric
        value = _metric(record, metric)
        if _better(value, self.best["value"], _mode(metric), 0.0):
            self.best = {
                "value": value,
                "epoch": record["epoch"],
                "state": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            }
            return True
        return False

    def _early_stop(self, record: dict[str, Any]) -> bool:
        es = self.cfg.train.early_stop
        if es is None:
            return False
        value = _metric(record, es.metric)
        if _better(value, self.stop["best"], es.resolved_mode(), es.min_delta):
            self.stop = {"best": value, "bad_epochs": 0}
        else:
            self.stop["bad_epochs"] += 1
        return self.stop["bad_epochs"] >= es.patience

    def _save_checkpoint(self, epoch: int) -> None:
        save_checkpoint(
            self.ckpt_dir,
            {
                "epoch": epoch,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "rng": rng_state(),
                "best": self.best,
                "early_stop": self.stop,
                "history": self.history,
                "config": json.dumps(_resumable(self.cfg.resolved()), sort_keys=True),
            },
        )

    def _restore(self, state: dict[str, Any]) -> None:
        saved = json.loads(state["config"])
        current = _resumable(self.cfg.resolved())
        if saved != current:
            keys = sorted(_diff_keys(saved, current))
            diff = [f"{key} {_at(saved, key)!r} -> {_at(current, key)!r}" for key in keys]
            more = f" and {len(diff) - 5} more" if len(diff) > 5 else ""
            raise TrainingError(
                f"the checkpoint in {self.ckpt_dir} was made with a different config "
                f"(differs in {', '.join(diff[:5])}{more})",
                fix="resume with the same config (only train.epochs may change), or drop --resume",
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        restore_rng(state["rng"])
        self.best, self.stop, self.history = state["best"], state["early_stop"], list(state["history"])
        self.start_epoch = int(state["epoch"]) + 1
        if self.ctx.is_main:
            self.console.print(f"resuming {self.run_dir} after epoch {state['epoch']}")

    def _print_epoch(self, record: dict[str, Any], improved: bool) -> None:
        if not self.cfg.train.progress:
            return
        star = " *" if improved else ""
        self.console.print(
            f"epoch {record['epoch']:>3}/{self.cfg.train.epochs}  loss {record['train.loss']:.4f}  "
            f"acc {record['train.accuracy']:.4f}  val.loss {record['val.loss']:.4f}  "
            f"val.acc {record['val.accuracy']:.4f}  val.f1 {record['val.f1_macro']:.4f}  "
            f"lr {record['lr']:.2e}  {record['samples_per_s']:,.0f} samples/s{star}",
            soft_wrap=True,
        )

    # ------------------------------------------------------------------ the artifact
    def _finish(self, elapsed_s: float) -> Artifact | None:
        if self.best["state"] is not None:
            self.model.load_state_dict(self.best["state"])
        splits = {"val": self.data.val} | ({"test": self.data.test} if self.data.test is not None else {})
        evaluation = {name: self._evaluate(split, confusion=True) for name, split in splits.items()}
        if not self.ctx.is_main:
            return None
        metrics = {name: values for name, (values, _) in evaluation.items()}
        last = self.history[-1] if self.history else {}
        metrics["train"] = {k[6:]: v for k, v in last.items() if k.startswith("train.")}
        reference = reference_stats(self.data.train, self.data.num_classes)
        reference.update(_prediction_stats(self.model, self.data.val, self.data.num_classes, self.ctx.device))
        data_info = {**self.data.info, "config": self.cfg.data.model_dump(mode="json")}
        params = self.custom.params if self.custom.params is not None else self.cfg.resolved()
        fields = {"metrics": metrics, "reference": reference, "data": data_info, "curves": self.history}
        if self.custom.parent is not None:
            artifact = self.custom.parent.derive(
                op=self.custom.op, params=params, model=self.model, architecture=self.architecture, **fields
            )
        else:
            artifact = Artifact.create(
                name=self.cfg.run_name,
                model=self.model,
                architecture=self.architecture,
                input=self.data.input,
                labels=self.data.labels,
                op=self.custom.op,
                params=params,
                **fields,
            )
        confusion = {name: {"labels": self.data.labels, "matrix": m} for name, (_, m) in evaluation.items()}
        saved = artifact.save(
            self.run_dir / "artifact", extra_files={"evaluation.json": json.dumps(confusion).encode()}
        )
        summary = {
            "artifact": str(saved.path),
            "best_epoch": self.best["epoch"],
            "best_metric": self.cfg.train.best_metric,
            "epochs_run": len(self.history),
            "metrics": metrics,
            "train_time_s": elapsed_s,
        }
        write_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        return saved


# ---------------------------------------------------------------------- helpers of the run
def _set_threads(cfg: TrainConfig, ctx: dist_.DistContext) -> None:
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    elif ctx.enabled and ctx.device.type == "cpu":
        # N processes on one machine would each take every core and fight; share them out
        local = int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))


def _architecture(cfg: TrainConfig, data: Dataset) -> dict[str, Any]:
    shape = data.input["shape"]
    derived: dict[str, Any] = {"in_channels": shape[0], "num_classes": data.num_classes}
    derived["input_size"] = list(shape[1:]) if data.input["layout"] == "image" else None
    if cfg.model.dropout is not None:
        derived["dropout"] = cfg.model.dropout
    kwargs = {**derived, **cfg.model.kwargs}
    if cfg.model.import_path:
        return {"import": cfg.model.import_path, "kwargs": kwargs}
    return {"name": cfg.model.name, "kwargs": kwargs}


def _check_fits(model: nn.Module, data: Dataset, architecture: dict[str, Any]) -> None:
    name = architecture.get("name") or architecture.get("import")
    sample = data.train.x[:2]
    try:
        with torch.no_grad():
            out = model.eval()(sample)
    except (RuntimeError, ValueError) as exc:
        raise ModelError(
            f"model {name} does not accept the data's inputs of shape {list(sample.shape[1:])} "
            f"({str(exc).splitlines()[0][:160]})",
            fix="choose a model for this input, or change data.resize / data.channels / model.kwargs",
        ) from None
    model.train()
    if out.dim() != 2 or out.shape[1] != data.num_classes:
        raise ModelError(
            f"model {name} returns outputs of shape {list(out.shape)}, expected (batch, {data.num_classes})",
            fix="the model must return one logit per class",
        )


def _bar_stats(loss_sum: torch.Tensor, correct: torch.Tensor, seen: int, t0: float) -> str:
    seen = max(seen, 1)
    rate = seen / max(time.perf_counter() - t0, 1e-9)
    return f"loss {float(loss_sum) / seen:.4f}  acc {int(correct) / seen:.4f}  {rate:,.0f} samples/s"


def _mode(metric: str) -> str:
    return "min" if metric.endswith("loss") else "max"


def _metric(record: dict[str, Any], name: str) -> float:
    if name not in record:
        choices = ", ".join(k for k in record if k.startswith(("val.", "train.")))
        raise TrainingError(f"metric {name!r} is not measured", fix=f"choose one of: {choices}")
    return float(record[name])


def _better(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def _resumable(resolved: dict[str, Any]) -> dict[str, Any]:
    """The config a checkpoint must match to be resumed: all of it but the epoch count and cosmetics."""
    out = json.loads(json.dumps(resolved))
    for key in ("epochs", "progress", "tensorboard"):
        out["train"].pop(key, None)
    out.pop("out", None)
    return out


def _at(config: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        config = config.get(key) if isinstance(config, dict) else None
    return config


def _diff_keys(a: Any, b: Any, prefix: str = "") -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys: set[str] = set()
        for k in set(a) | set(b):
            keys |= _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return keys
    return set() if a == b else {prefix.rstrip(".")}


@torch.inference_mode()
def _prediction_stats(
    model: nn.Module, split: Split, num_classes: int, device: torch.device
) -> dict[str, Any]:
    """Predicted-class frequencies and the top-1 confidence histogram on validation: the drift baseline."""
    model.eval()
    # probs: (n, classes)
    probs = torch.cat(
        [model(split.x[i : i + 1024].to(device)).float().softmax(1).cpu() for i in range(0, len(split), 1024)]
    )
    return prediction_stats(probs, num_classes)
