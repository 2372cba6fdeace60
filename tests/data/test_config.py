"""DataConfig validation, ``--data NAME[:PATH]`` parsing, the registry, and the docstring examples."""

from __future__ import annotations

import doctest
import importlib

import pytest
from pydantic import ValidationError

from torchship.data import DataConfig, datasets, parse_data_arg
from torchship.errors import DataError

NAMES = [
    "cifar10",
    "cifar100",
    "csv",
    "digits",
    "fashion-mnist",
    "imagefolder",
    "kmnist",
    "mnist",
    "npz",
    "synthetic",
]


def test_registry_holds_every_reader():
    assert datasets.names() == NAMES
    for name, reader in datasets:
        assert callable(reader), name
        assert reader.__doc__, f"reader {name} has no docstring"


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DataError, match=r"unknown dataset 'mnsit'; choose one of: cifar10, .*synthetic"):
        parse_data_arg("mnsit:/data")


@pytest.mark.parametrize(
    ("arg", "name", "path"),
    [
        ("digits", "digits", None),
        ("mnist:/data/mnist", "mnist", "/data/mnist"),
        ("csv:/x/y.csv", "csv", "/x/y.csv"),
        ("imagefolder:C:/imgs:v2", "imagefolder", "C:/imgs:v2"),
    ],
)
def test_parse_data_arg(arg, name, path):
    cfg = parse_data_arg(arg)
    assert (cfg.name, cfg.path) == (name, path)


def test_parse_data_arg_overrides_and_their_errors():
    assert parse_data_arg("digits", limit=50, seed=3).limit == 50
    with pytest.raises(DataError, match="invalid data settings for 'digits': val_fraction"):
        parse_data_arg("digits", val_fraction=1.5)
    with pytest.raises(DataError, match="names no dataset"):
        parse_data_arg(":/data")


@pytest.mark.parametrize(
    "bad",
    [
        {"val_fraction": 0.6, "test_fraction": 0.4},
        {"val_fraction": -0.1},
        {"resize": [32, 32, 3]},
        {"resize": 0},
        {"channels": 0},
        {"limit": 0},
        {"augment": {"hflip": True, "flip": True}},
        {"vall_fraction": 0.1},
        {"synthetic": {"shape": [1, 2, 3, 4]}},
    ],
)
def test_config_rejects(bad):
    with pytest.raises(ValidationError):
        DataConfig.model_validate(bad)


def test_config_round_trips_through_json():
    cfg = DataConfig(name="synthetic", resize=[16, 24], augment={"hflip": True}, synthetic={"shape": [8]})
    assert DataConfig.model_validate(cfg.model_dump(mode="json")) == cfg


@pytest.mark.parametrize(
    "module",
    [
        "torchship.data",
        "torchship.data.dataset",
        "torchship.data.loader",
        "torchship.data.stats",
        "torchship.data.tabular",
    ],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
