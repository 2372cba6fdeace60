"""The data section of a config: which dataset, how to split, resize and augment it."""

from __future__ import annotations

from pydantic import Field, NonNegativeFloat, PositiveInt, model_validator

from torchship.config import Strict


class AugmentConfig(Strict):
    """Training-time augmentations, applied to whole normalized batches in torch.

    Crop, flip and rotation apply to images only; noise applies to any layout.
    """

    crop_padding: int = Field(default=0, ge=0)  # zero-pad each side, then crop back at a random offset
    hflip: bool = False  # mirror left-right with probability 1/2
    rotate_deg: NonNegativeFloat = 0.0  # rotate by a uniform angle in [-deg, deg]
    noise_std: NonNegativeFloat = 0.0  # add N(0, noise_std^2) to the normalized inputs

    @property
    def enabled(self) -> bool:
        return bool(self.crop_padding or self.hflip or self.rotate_deg or self.noise_std)


class SyntheticConfig(Strict):
    """The ``synthetic`` dataset: Gaussian blobs around one prototype per class."""

    shape: list[PositiveInt] = Field(default_factory=lambda: [3, 32, 32], min_length=1, max_length=3)
    classes: int = Field(default=10, ge=2)
    size: PositiveInt = 2048
    seed: int = 0


class DataConfig(Strict):
    """Which dataset to load and how to split and shape it (``data:`` in a config file)."""

    name: str = "digits"  # a registry name: torchship.data.datasets.names()
    path: str | None = None  # file or folder; downloadable sets default to ~/.cache/torchship/<name>
    val_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)  # ignored when the set ships a test split
    seed: int = 0  # the split permutation
    resize: PositiveInt | list[PositiveInt] | None = None  # 32 -> 32x32, or [height, width]
    channels: int | None = Field(default=None, ge=1)  # 3: repeat a gray channel; 1: RGB -> luminance
    limit: PositiveInt | None = None  # first N samples (and first N of an official test split)
    download: bool = False
    label_column: str | None = None  # csv: the label column's name (default: the last column)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1")
        if isinstance(self.resize, list) and len(self.resize) != 2:
            raise ValueError("resize must be an int or [height, width]")
        return self
