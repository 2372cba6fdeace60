"""Partitions: every sample to one client, seeded, and Dirichlet really skews the labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchship.errors import ConfigError
from torchship.federate.partition import label_counts, parse_partition, skew, split_indices


def _labels(n: int = 1000, classes: int = 10) -> torch.Tensor:
    return torch.arange(n) % classes


@pytest.mark.parametrize("spec", ["iid", "dirichlet:0.5", "dirichlet:100"])
def test_every_sample_goes_to_exactly_one_client(spec):
    parts = split_indices(_labels(), 10, parse_partition(spec), seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(1000))
    assert all(len(p) > 0 for p in parts)


def test_dirichlet_is_seeded():
    a = split_indices(_labels(), 10, parse_partition("dirichlet:0.5"), seed=3)
    b = split_indices(_labels(), 10, parse_partition("dirichlet:0.5"), seed=3)
    c = split_indices(_labels(), 10, parse_partition("dirichlet:0.5"), seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_small_alpha_skews_labels_and_iid_does_not():
    y = _labels()
    iid = skew(label_counts(y, split_indices(y, 10, parse_partition("iid"), 0), 10))
    low = skew(label_counts(y, split_indices(y, 10, parse_partition("dirichlet:0.1"), 0), 10))
    half = skew(label_counts(y, split_indices(y, 10, parse_partition("dirichlet:0.5"), 0), 10))
    assert iid < 0.2 < 0.3 < half < low  # seed 0: 0.12, 0.46, 0.68
    counts = np.asarray(label_counts(y, split_indices(y, 10, parse_partition("dirichlet:0.1"), 0), 10))
    # with alpha 0.1 a typical client has most of its samples in one or two classes
    top2 = np.sort(counts, axis=1)[:, -2:].sum(1) / counts.sum(1)
    assert np.median(top2) > 0.7


@pytest.mark.parametrize("bad", ["dirichlet", "dirichlet:0", "dirichlet:x", "shards:2", "iid:3"])
def test_a_bad_partition_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="dirichlet:ALPHA"):
        parse_partition(bad)
