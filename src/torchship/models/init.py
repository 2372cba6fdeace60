"""Weight initialisation schemes: default (PyTorch's), xavier, kaiming."""

from __future__ import annotations

from torch import nn

from torchship.errors import ModelError

INIT_SCHEMES = ("default", "xavier", "kaiming")


def apply_init(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise conv and linear weights in place (biases to zero); ``default`` keeps PyTorch's."""
    if scheme not in INIT_SCHEMES:
        raise ModelError(f"unknown init scheme {scheme!r}", fix=f"choose one of: {', '.join(INIT_SCHEMES)}")
    if scheme == "default":
        return model
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            if scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
