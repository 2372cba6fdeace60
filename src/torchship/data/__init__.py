"""Datasets by name (``--data NAME[:PATH]``), seeded splits, normalization, augmentation, loaders.

Example:
    >>> from torchship.data import DataConfig, load_data, make_loader
    >>> ds = load_data(DataConfig(name="digits", resize=32, channels=3, limit=100))
    >>> ds.shape, ds.input["scale"]
    ([3, 32, 32], 0.0625)
    >>> x, y = next(iter(make_loader(ds.train, 16, shuffle=True, seed=0)))
    >>> tuple(x.shape), y.dtype
    ((16, 3, 32, 32), torch.int64)
"""

from torchship.data import builtin, cifar, idx, images, tabular  # noqa: F401 - register the readers
from torchship.data.config import AugmentConfig, DataConfig, SyntheticConfig
from torchship.data.dataset import Dataset, Split, load_data, parse_data_arg
from torchship.data.images import preprocess_image
from torchship.data.loader import BatchLoader, make_loader
from torchship.data.preprocess import artifact_data, artifact_split, data_config_for, preprocess
from torchship.data.registry import RawData, datasets
from torchship.data.stats import reference_stats

__all__ = [
    "AugmentConfig",
    "BatchLoader",
    "DataConfig",
    "Dataset",
    "RawData",
    "Split",
    "SyntheticConfig",
    "artifact_data",
    "artifact_split",
    "data_config_for",
    "datasets",
    "load_data",
    "make_loader",
    "parse_data_arg",
    "preprocess",
    "preprocess_image",
    "reference_stats",
]
