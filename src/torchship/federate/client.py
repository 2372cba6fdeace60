"""The Flower ClientApp: train the global model on this client's data with torchship's engine.

The server sends, with the global weights, the whole run (training config + ``federate:``
section), the input preprocessing and the labels. A client finds its data in its node
config: ``data-path`` (its own file, deployment) or ``partition-id``/``num-partitions`` (its
share of the config's dataset, simulation). Its data never leaves it; only weights and
the sample count go back.
"""

from __future__ import annotations

import io
import json
import tempfile
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from rich.console import Console
from torch import nn

from torchship.data import Dataset
from torchship.federate.config import FederatedRun
from torchship.federate.partition import client_split, load_client_file, partitioned
from torchship.models import build_model
from torchship.train import TrainConfig, train

RUN_KEY = "torchship-run"  # the run's JSON in the train message's ConfigRecord
UNIFORM_KEY = "torchship-uniform-weights"  # differential privacy: weight every client the same
CLIPPING_NORM_KEY = "clipping_norm"  # what Flower's DP wrappers send (flwr.supercore.differential_privacy)


def _clip_when_asked(msg: Message, context: Context, call_next: Any) -> Message:
    """Flower's ``fixedclipping_mod`` when the server runs client-side-clipping DP, else nothing."""
    config = msg.content.config_records.get("config")
    if config is not None and CLIPPING_NORM_KEY in config:
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


client_app = ClientApp(mods=[_clip_when_asked])


@client_app.train()
def train_round(msg: Message, context: Context) -> Message:
    """One round: load the global weights, train ``local_epochs`` on local data, send weights back."""
    config = msg.content["config"]
    run = FederatedRun.from_json(str(config[RUN_KEY]))
    spec = json.loads(str(config["torchship-model"]))
    server_round = int(config["server-round"]) + int(config.get("torchship-round-offset", 0))
    data, client_id = _client_data(run, spec, context.node_config)
    model = build_model(spec["architecture"])
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    mu = float(config["proximal-mu"]) if "proximal-mu" in config else 0.0
    with tempfile.TemporaryDirectory(prefix="torchship-client-") as work:
        cfg = _local_config(run, work, seed=run.train.train.seed + 1009 * server_round + client_id)
        artifact = train(
            cfg,
            model=model,
            architecture=spec["architecture"],
            data=data,
            loss_fn=_loss(model, cfg.train.label_smoothing, mu),
            console=Console(file=io.StringIO()),
        )
    if artifact is None:  # only a DDP rank > 0 gets None, and a client runs one process
        raise RuntimeError("the training engine returned no artifact")
    trained = artifact.state_dict()
    metrics = artifact.manifest.metrics.get("train", {})
    reply = RecordDict(
        {
            "arrays": ArrayRecord({k: trained[k] for k in model.state_dict()}),
            "metrics": MetricRecord(
                {
                    "train_loss": float(metrics.get("loss", 0.0)),
                    "train_accuracy": float(metrics.get("accuracy", 0.0)),
                    "samples": len(data.train),
                    # DP-FedAvg's noise is calibrated to an unweighted mean, and Flower's accountant checks it
                    "num-examples": 1 if bool(config.get(UNIFORM_KEY, False)) else len(data.train),
                }
            ),
        }
    )
    return Message(content=reply, reply_to=msg)


def _local_config(run: FederatedRun, work: str, seed: int) -> TrainConfig:
    """The run's training config for one round on a client: local epochs, no early stop, quiet."""
    data = run.train.resolved()
    data["out"] = work
    data["train"].update(
        epochs=run.federate.local_epochs, early_stop=None, progress=False, tensorboard=False, seed=seed
    )
    return TrainConfig.model_validate(data)


def _loss(model: nn.Module, label_smoothing: float, mu: float) -> Any:
    """Cross-entropy, plus FedProx's proximal term ``mu/2 * ||w - w_global||^2`` when mu > 0."""
    anchor = [p.detach().clone() for p in model.parameters()]

    def loss_fn(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        if mu > 0:
            drift = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True))
            loss = loss + mu / 2 * drift
        return loss

    return loss_fn


def _client_data(run: FederatedRun, spec: dict[str, Any], node_config: dict[str, Any]) -> tuple[Dataset, int]:
    if "data-path" in node_config:
        path = str(node_config["data-path"])
        return load_client_file(path, spec["input"], spec["labels"]), int(node_config.get("partition-id", 0))
    client_id = int(node_config["partition-id"])
    count = int(node_config["num-partitions"])
    data, parts = partitioned(
        run.train.data.model_dump_json(), count, run.federate.partition, run.federate.seed
    )
    return client_split(data, parts[client_id]), client_id
