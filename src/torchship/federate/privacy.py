"""Differential privacy on client updates through Flower's fixed-clipping DP wrappers.

Each sampled client's update is clipped to L2 norm ``clip_norm`` (on the client with
Flower's ``fixedclipping_mod``, or on the server), and Gaussian noise with std
``noise_multiplier * clip_norm / sampled`` is added to the average. Flower's RDP accountant
(it needs ``dp-accounting``, ``pip install 'torchship[federate]'``) then gives the
client-level (ε, δ) spent so far, without amplification by sampling; FedAdam's own
aggregation is outside what the accountant supports, so ε is not computed for it.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
)

from torchship.federate.config import FederateConfig

DEFAULT_DELTA = 1e-5
ACCOUNTING = (
    "Flower RdpAccountant (dp-accounting), client-level, add-or-remove-one, no sampling amplification"
)


class PrivacyLedger:
    """Wraps the strategy when privacy is configured and reports (ε, δ) after each round."""

    def __init__(self, fed: FederateConfig, num_sampled: int, rounds_before: int = 0):
        self.fed, self.num_sampled, self.rounds_before = fed, num_sampled, rounds_before
        self.privacy = fed.privacy
        self.delta = self.privacy.delta if self.privacy and self.privacy.delta else DEFAULT_DELTA
        self.wrapper: Any = None
        self.why_no_epsilon: str | None = None

    def wrap(self, strategy: FedAvg) -> Any:
        if self.privacy is None:
            return strategy
        accountant = self._accountant(strategy)
        cls = (
            DifferentialPrivacyClientSideFixedClipping
            if self.privacy.side == "client"
            else DifferentialPrivacyServerSideFixedClipping
        )
        self.wrapper = cls(
            strategy,
            noise_multiplier=self.privacy.noise_multiplier,
            clipping_norm=self.privacy.clip_norm,
            num_sampled_clients=self.num_sampled,
            accountant=accountant,
        )
        return self.wrapper

    def _accountant(self, strategy: FedAvg) -> Any:
        if self.privacy.noise_multiplier <= 0:
            self.why_no_epsilon = "noise_multiplier 0 gives no differential privacy (ε is infinite)"
            return None
        if type(strategy).aggregate_train is not FedAvg.aggregate_train:
            self.why_no_epsilon = f"Flower's accountant does not cover {self.fed.strategy}'s aggregation"
            return None
        if importlib.util.find_spec("dp_accounting") is None:
            self.why_no_epsilon = "dp-accounting is not installed (pip install 'torchship[federate]')"
            return None
        from flwr.supercore.privacy_accounting import (
            GaussianPrivacyEvent,
            NeighboringRelation,
            PrivacyConfig,
            SamplingMethod,
        )
        from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

        accountant = RdpAccountant(
            PrivacyConfig(
                target_delta=self.delta,
                population_size=self.fed.clients,
                neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                sampling_method=SamplingMethod.NO_AMPLIFICATION,
            )
        )
        if self.rounds_before:  # a resumed run has already spent these rounds
            event = GaussianPrivacyEvent(self.privacy.noise_multiplier, self.num_sampled, self.fed.clients)
            accountant.compose(event, count=self.rounds_before)
        return accountant

    def spent(self, round_number: int) -> dict[str, Any]:
        """``{"epsilon": ε, "delta": δ}`` after a round, or nothing without privacy."""
        if self.privacy is None:
            return {}
        spent = self.wrapper.privacy_spent() if self.wrapper is not None else None
        return {"epsilon": spent.epsilon if spent else None, "delta": self.delta if spent else None}

    def describe(self, round_number: int) -> dict[str, Any] | None:
        """The manifest's record: the mechanism's parameters and what they bought."""
        if self.privacy is None:
            return None
        info = {
            "mechanism": f"gaussian, fixed clipping on the {self.privacy.side}",
            "clip_norm": self.privacy.clip_norm,
            "noise_multiplier": self.privacy.noise_multiplier,
            "sampled_clients": self.num_sampled,
            "population": self.fed.clients,
            "rounds": round_number,
            **self.spent(round_number),
        }
        if self.why_no_epsilon:
            info["epsilon_not_computed"] = self.why_no_epsilon
        else:
            info["accounting"] = ACCOUNTING
        return info
