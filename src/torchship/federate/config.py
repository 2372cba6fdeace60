"""The ``federate:`` section of a training config: how many clients, rounds, which strategy.

    federate: {clients: 10, rounds: 20, fraction: 1.0, partition: "dirichlet:0.5", strategy: fedavg}

Everything else (model, data, optim, train) is the ordinary training config: every client
trains with it on its own data for ``local_epochs`` each round.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    field_validator,
)

from torchship.config import Strict
from torchship.train import TrainConfig

STRATEGIES = ("fedavg", "fedprox", "fedadam")


class PrivacyConfig(Strict):
    """Differential privacy on the client updates (Flower's fixed-clipping DP wrappers).

    ``clip_norm`` bounds each client's update (L2 over all weights), then Gaussian noise of
    std ``noise_multiplier * clip_norm / sampled clients`` is added to the aggregate.
    ``side: client`` clips on the clients (Flower's ``fixedclipping_mod``), so the server
    never sees an unclipped update; ``server`` clips on the server.
    """

    clip_norm: PositiveFloat = 1.0
    noise_multiplier: NonNegativeFloat = 1.0
    side: Literal["client", "server"] = "client"
    delta: float | None = Field(default=None, gt=0.0, lt=1.0)  # default: 1e-5


class FederateConfig(Strict):
    clients: PositiveInt = 10
    rounds: PositiveInt = 10
    fraction: float = Field(default=1.0, gt=0.0, le=1.0)  # share of clients sampled each round
    min_clients: PositiveInt = 2  # a round waits for this many clients, and needs this many to start
    partition: str = "iid"  # iid | dirichlet:ALPHA | by-file
    strategy: Literal["fedavg", "fedprox", "fedadam"] = "fedavg"
    local_epochs: PositiveInt = 1
    proximal_mu: NonNegativeFloat = 0.01  # fedprox: weight of the proximal term
    server_lr: PositiveFloat = 0.01  # fedadam: the server optimizer's step size (eta)
    seed: int = 0  # partitions and client sampling
    round_timeout_s: PositiveFloat = 600.0  # replies later than this drop out of the round
    privacy: PrivacyConfig | None = None

    @field_validator("partition")
    @classmethod
    def _known_partition(cls, value: str) -> str:
        from torchship.federate.partition import parse_partition

        parse_partition(value)
        return value


class FederatedRun(Strict):
    """A training config plus its ``federate:`` section: what the server sends every client."""

    train: TrainConfig
    federate: FederateConfig

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FederatedRun:
        body = dict(data)
        federate = body.pop("federate", None) or {}
        return cls.model_validate({"train": body, "federate": federate})

    def to_json(self) -> str:
        return json.dumps(
            {**self.train.resolved(), "federate": self.federate.model_dump(mode="json")}, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str) -> FederatedRun:
        return cls.from_dict(json.loads(text))
