"""The server side of a federated run, the same in simulation and deployment.

Given a Flower ``Grid`` (in-process clients, or the SuperLink's), it runs Flower's strategy
for the configured rounds, evaluates the global model on the server's held-out split after
every round, and writes each round's global model as an artifact:

    OUT/rounds/001/ ... OUT/rounds/NNN/   one artifact per round (lineage: round, clients, strategy)
    OUT/rounds.jsonl                      one line per round: participants, dropped, loss, accuracy
    OUT/artifact/                         the last round's global model, for export/compress/serve
    OUT/summary.json                      the run at a glance (and partitions.json in simulation)
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord
from flwr.serverapp import Grid
from rich.console import Console

from torchship.artifact import Artifact
from torchship.data import Dataset, reference_stats
from torchship.federate.client import RUN_KEY, UNIFORM_KEY
from torchship.federate.config import FederatedRun
from torchship.federate.grid import RoundRecord, TrackingGrid
from torchship.federate.privacy import PrivacyLedger
from torchship.federate.strategy import build_strategy
from torchship.models import build_model
from torchship.train.engine import _architecture  # the engine's own derivation from config + data
from torchship.train.metrics import evaluate_logits

ROUNDS_DIR = "rounds"
ROUNDS_LOG = "rounds.jsonl"


def run_server(
    grid: Grid,
    run: FederatedRun,
    data: Dataset,
    out: Path,
    *,
    resume: bool = False,
    console: Console | None = None,
    node_names: dict[int, str] | None = None,
) -> Artifact:
    """Run the federated rounds over ``grid`` and return the final artifact (also at OUT/artifact).

    ``data.val`` is the held-out split the global model is scored on each round.
    """
    console = console or Console(stderr=True)
    cfg, fed = run.train, run.federate
    out.mkdir(parents=True, exist_ok=True)
    architecture = _architecture(cfg, data)
    torch.manual_seed(cfg.train.seed)
    random.seed(fed.seed)  # Flower samples clients with the random module
    model = build_model(architecture, init=cfg.model.init)
    state = _Rounds(out, console, node_names or {})
    if resume:
        state.restore(model)
    elif (out / ROUNDS_LOG).exists():
        console.print(f"[yellow]starting over in {out} (pass --resume to continue the old run)")
        (out / ROUNDS_LOG).unlink()
    left = fed.rounds - state.done
    if left <= 0:
        console.print(f"all {fed.rounds} rounds are done in {out}")
        return Artifact.load(out / "artifact")
    num_sampled = max(int(fed.clients * fed.fraction), min(fed.min_clients, fed.clients))  # as Flower samples
    ledger = PrivacyLedger(fed, num_sampled, rounds_before=state.done)
    strategy = ledger.wrap(build_strategy(fed))
    tracking = TrackingGrid(grid)
    model_spec = {"architecture": architecture, "input": data.input, "labels": data.labels}
    train_config = ConfigRecord(
        {
            RUN_KEY: run.to_json(),
            "torchship-model": json.dumps(model_spec),
            "torchship-round-offset": state.done,
            UNIFORM_KEY: fed.privacy is not None,
        }
    )

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        model.load_state_dict(arrays.to_torch_state_dict())
        metrics = _score(model, data, cfg.train.eval_batch_size)
        if server_round == 0:
            if state.done == 0:
                console.print(f"round   0/{fed.rounds}  initial model  val.acc {metrics['accuracy']:.4f}")
            return MetricRecord(metrics)
        record = tracking.rounds.get(server_round, RoundRecord())
        state.finish_round(state.done + 1, model, architecture, data, run, record, metrics, ledger)
        return MetricRecord(metrics)

    console.print(
        f"federate: {fed.strategy}, {fed.clients} clients, {fed.rounds} rounds, partition {fed.partition}"
        + (f", resuming after round {state.done}" if state.done else "")
    )
    strategy.start(
        grid=tracking,
        initial_arrays=ArrayRecord(model.state_dict()),
        num_rounds=left,
        timeout=fed.round_timeout_s,
        train_config=train_config,
        evaluate_fn=evaluate,
    )
    return state.finalize(data, run, ledger, model)


def _score(model: torch.nn.Module, data: Dataset, batch_size: int, confusion: bool = False) -> Any:
    model.eval()
    with torch.inference_mode():
        values, matrix = evaluate_logits(
            model, data.val.x, data.val.y, data.num_classes, batch_size, torch.device("cpu"), confusion
        )
    return (values, matrix) if confusion else values


class _Rounds:
    """What the run has written so far: round artifacts, rounds.jsonl, the lineage chain."""

    def __init__(self, out: Path, console: Console, node_names: dict[int, str]):
        self.out, self.console, self.node_names = out, console, node_names
        self.done = 0
        self.history: list[dict[str, Any]] = []
        self.last: Artifact | None = None
        self.started = time.perf_counter()

    def restore(self, model: torch.nn.Module) -> None:
        """Continue after the last round whose artifact is complete."""
        log = self.out / ROUNDS_LOG
        rounds = sorted(p for p in (self.out / ROUNDS_DIR).glob("[0-9]*") if (p / "manifest.json").is_file())
        if not rounds or not log.is_file():
            self.console.print(f"[yellow]nothing to resume in {self.out}: starting at round 1")
            return
        self.last = Artifact.load(rounds[-1])
        self.done = int(self.last.manifest.lineage.params["round"])
        model.load_state_dict(self.last.state_dict())
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        self.history = [r for r in lines if r["round"] <= self.done]
        log.write_text("".join(json.dumps(r) + "\n" for r in self.history))
        self.console.print(f"resuming {self.out} after round {self.done}")

    def _name(self, node: int) -> str:
        return self.node_names.get(node, f"node-{node}")

    def finish_round(
        self,
        number: int,
        model: torch.nn.Module,
        architecture: dict[str, Any],
        data: Dataset,
        run: FederatedRun,
        record: RoundRecord,
        metrics: dict[str, float],
        ledger: PrivacyLedger,
    ) -> None:
        fed = run.federate
        replied = [self._name(n) for n in record.replied]
        dropped = {self._name(n): reason[:300] for n, reason in record.failed.items()}
        timed_out = [self._name(n) for n in record.timed_out]
        entry = {
            "round": number,
            "clients_sampled": len(record.sent),
            "participants": replied,
            "dropped": dropped,
            "timed_out": timed_out,
            "train.loss": record.train_loss(),
            "train.accuracy": record.train_accuracy(),
            "samples": record.samples(),
            **{f"val.{k}": v for k, v in metrics.items()},
            "elapsed_s": round(time.perf_counter() - self.started, 3),
        }
        entry.update(ledger.spent(number))
        self.history.append(entry)
        params = {
            "round": number,
            "of_rounds": fed.rounds,
            "strategy": fed.strategy,
            "partition": fed.partition,
            "participants": replied,
            "dropped": sorted([*dropped, *timed_out]),
            "federate": fed.model_dump(mode="json"),
            "privacy": ledger.describe(number),
            "config": run.train.resolved(),
        }
        fields = {
            "metrics": {"val": metrics},
            "curves": self.history,
            "data": {**data.info, "federated": True},
        }
        if self.last is None:
            art = Artifact.create(
                name=run.train.run_name,
                model=model,
                architecture=architecture,
                input=data.input,
                labels=data.labels,
                op="federate",
                params=params,
                **fields,
            )
        else:
            art = self.last.derive(op="federate", params=params, model=model, **fields)
        self.last = art.save(self.out / ROUNDS_DIR / f"{number:03d}")
        entry["artifact"] = str(self.last.path)
        with (self.out / ROUNDS_LOG).open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
        self.done = number
        self._print(entry, fed.rounds)

    def _print(self, e: dict[str, Any], rounds: int) -> None:
        gone = [*e["dropped"], *e["timed_out"]]
        loss = f"{e['train.loss']:.4f}" if e["train.loss"] is not None else "-"
        self.console.print(
            f"round {e['round']:>3}/{rounds}  clients {len(e['participants'])}/{e['clients_sampled']}"
            f"{'  dropped ' + ', '.join(gone) if gone else ''}  train.loss {loss}  "
            f"val.loss {e['val.loss']:.4f}  val.acc {e['val.accuracy']:.4f}"
            + (f"  ε {e['epsilon']:.2f}" if e.get("epsilon") is not None else "")
            + f"  {e['elapsed_s']:.1f} s",
            soft_wrap=True,
        )

    def finalize(
        self, data: Dataset, run: FederatedRun, ledger: PrivacyLedger, model: torch.nn.Module
    ) -> Artifact:
        if self.last is None:
            raise RuntimeError("no round finished")
        model.load_state_dict(self.last.state_dict())
        values, matrix = _score(model, data, run.train.train.eval_batch_size, confusion=True)
        reference = reference_stats(data.train, data.num_classes)
        final = self.last.with_manifest(reference=reference)
        target = self.out / "artifact"
        if target.exists():
            shutil.rmtree(target)
        confusion = {"val": {"labels": data.labels, "matrix": matrix}}
        saved = final.save(target, extra_files={"evaluation.json": json.dumps(confusion).encode()})
        summary = {
            "artifact": str(saved.path),
            "rounds": self.done,
            "strategy": run.federate.strategy,
            "partition": run.federate.partition,
            "clients": run.federate.clients,
            "metrics": {"val": values},
            "privacy": ledger.describe(self.done),
            "dropped": {
                str(e["round"]): sorted([*e["dropped"], *e["timed_out"]])
                for e in self.history
                if e["dropped"] or e["timed_out"]
            },
            "time_s": round(time.perf_counter() - self.started, 3),
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return saved
