"""Flower's strategies by name: FedAvg, FedProx and FedAdam, each weighting clients by samples."""

from __future__ import annotations

from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from torchship.federate.config import FederateConfig
from torchship.registry import Registry

strategies: Registry = Registry("strategy")


@strategies.register("fedavg")
def fedavg(fed: FederateConfig, **common: object) -> FedAvg:
    """Average the clients' weights, each weighted by its sample count."""
    return FedAvg(**common)


@strategies.register("fedprox")
def fedprox(fed: FederateConfig, **common: object) -> FedAvg:
    """FedAvg aggregation; clients add ``mu/2 ||w - w_global||^2`` to their loss (mu sent by Flower)."""
    return FedProx(proximal_mu=fed.proximal_mu, **common)


@strategies.register("fedadam")
def fedadam(fed: FederateConfig, **common: object) -> FedAvg:
    """The weighted average of the updates becomes a pseudo-gradient for a server-side Adam step."""
    return FedAdam(eta=fed.server_lr, **common)


def build_strategy(fed: FederateConfig) -> FedAvg:
    """The configured strategy; the server evaluates centrally, so no federated evaluation."""
    need = min(fed.min_clients, fed.clients)
    return strategies.get(fed.strategy)(
        fed,
        fraction_train=fed.fraction,
        fraction_evaluate=0.0,
        min_train_nodes=need,
        min_available_nodes=need,
        weighted_by_key="num-examples",
    )
