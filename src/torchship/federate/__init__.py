"""Federated learning on Flower: clients train with torchship's engine on data that stays with them.

Example:
    >>> from torchship.federate import parse_partition
    >>> parse_partition("dirichlet:0.5").alpha
    0.5
"""

from torchship.federate.config import FederateConfig, FederatedRun, PrivacyConfig
from torchship.federate.partition import parse_partition, split_indices
from torchship.federate.simulate import simulate

__all__ = ["FederateConfig", "FederatedRun", "PrivacyConfig", "parse_partition", "simulate", "split_indices"]
