"""The built-in model zoo: mlp, cnn, lenet, resnet.

Every builder takes ``in_channels``, ``num_classes``, ``input_size`` (an int or [h, w];
``None`` for flat feature vectors) and ``dropout``; the trainer fills the first three from
the data. Flatten sizes are found with one dry forward pass, so any input size that
survives the pooling works and one that does not gets a clear error.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from torchship.errors import ModelError
from torchship.registry import Registry

zoo: Registry = Registry("model", error=ModelError)


def _hw(input_size: int | Sequence[int] | None, model: str) -> tuple[int, int]:
    if input_size is None:
        raise ModelError(
            f"{model} needs image input (channels, height, width)", fix="use the mlp for feature vectors"
        )
    if isinstance(input_size, int):
        return input_size, input_size
    if len(input_size) != 2:
        raise ModelError(f"{model} input_size must be an int or [height, width], got {list(input_size)}")
    return int(input_size[0]), int(input_size[1])


def _flat_features(features: nn.Module, in_channels: int, hw: tuple[int, int], model: str) -> int:
    try:
        with torch.no_grad():
            # x: (1, channels, h, w)
            out = features(torch.zeros(1, in_channels, *hw))
    except RuntimeError as exc:
        raise ModelError(
            f"{model} cannot take {in_channels}x{hw[0]}x{hw[1]} inputs ({str(exc).splitlines()[0]})",
            fix="resize the data (data.resize) or choose a model for small inputs",
        ) from None
    return out.numel()


@zoo.register("mlp")
class MLP(nn.Module):
    """A multilayer perceptron over flattened inputs."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int | Sequence[int] | None = None,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.0,
    ):
        super().__init__()
        in_features = in_channels
        if input_size is not None:
            h, w = _hw(input_size, "mlp")
            in_features = in_channels * h * w
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            in_features = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@zoo.register("cnn")
class CNN(nn.Module):
    """The classic conv-pool-conv-pool-fc image classifier."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        input_size: int | Sequence[int] | None = 32,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        dropout: float = 0.0,
        batch_norm: bool = False,
    ):
        super().__init__()
        hw = _hw(input_size, "cnn")
        layers: list[nn.Module] = []
        prev = in_channels
        for width in channels:
            layers.append(nn.Conv2d(prev, width, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            prev = width
        self.features = nn.Sequential(*layers)
        flat = _flat_features(self.features, in_channels, hw, "cnn")
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, h, w)
        return self.head(self.classifier(self.features(x)))


@zoo.register("lenet")
class LeNet(nn.Module):
    """LeNet-5 (ReLU, max-pool); the first convolution pads so 8x8 and 28x28 inputs both fit."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int | Sequence[int] | None = 28,
        dropout: float = 0.0,
    ):
        super().__init__()
        hw = _hw(input_size, "lenet")
        second_pad = 2 if min(hw) < 16 else 0
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=second_pad),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        flat = _flat_features(self.features, in_channels, hw, "lenet")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 120),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.head = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.classifier(self.features(x)))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


# depth -> blocks per stage. 6n+2 depths are the CIFAR ResNets of He et al. (3 stages,
# widths w, 2w, 4w); 18 and 34 are the 4-stage ResNets with a CIFAR stem (widths w..8w).
_IMAGENET_STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def _stages(depth: int) -> tuple[int, ...]:
    if depth in _IMAGENET_STAGES:
        return _IMAGENET_STAGES[depth]
    if depth >= 8 and (depth - 2) % 6 == 0:
        n = (depth - 2) // 6
        return (n, n, n)
    raise ModelError(
        f"resnet depth {depth} is not supported", fix="use 6n+2 (8, 14, 20, 32, 44, 56) or 18, 34"
    )


@zoo.register("resnet")
class ResNet(nn.Module):
    """CIFAR-style ResNet: 3x3 stem, basic blocks, global average pooling.

    ``depth`` 8/20/32/... gives the 3-stage CIFAR nets (default width 16); 18/34 give the
    4-stage nets (default width 64), ResNet-18-size at width 64.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        input_size: int | Sequence[int] | None = 32,
        depth: int = 20,
        width: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        _hw(input_size, "resnet")
        stages = _stages(depth)
        base = width or (64 if depth in _IMAGENET_STAGES else 16)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base, 3, padding=1, bias=False),
            nn.BatchNorm2d(base),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        in_planes = base
        for i, count in enumerate(stages):
            planes = base * 2**i
            for j in range(count):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.head = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, h, w) -> logits: (batch, num_classes)
        return self.head(self.pool(self.layers(self.stem(x))))


def _resnet_alias(depth: int):
    def build(**kwargs):
        return ResNet(depth=depth, **kwargs)

    build.__doc__ = f"ResNet with depth {depth}."
    return build


for _depth in (8, 20, 18):
    zoo.register(f"resnet{_depth}")(_resnet_alias(_depth))
