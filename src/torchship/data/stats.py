"""Reference statistics of the training inputs: the baseline drift monitoring compares against."""

from __future__ import annotations

from typing import Any

import torch

from torchship.data.dataset import Split

# torch.quantile refuses inputs above 2**24 elements; per channel this many values is plenty
_MAX_QUANTILE_VALUES = 1 << 18
# drift bins: interior edges at the deciles, nudged below each edge so that a value equal to
# a training value (ties are common: blank pixels) lands in the same bin after float round-off
_BIN_QUANTILES = tuple(i / 10 for i in range(1, 10))
_EDGE_NUDGE = 1e-3


def reference_stats(split: Split, num_classes: int, max_samples: int = 2048) -> dict[str, Any]:
    """Per-channel (per-feature for tables) statistics of the normalized inputs, and class frequencies.

    Splits are already in a seeded random order, so the first ``max_samples`` are a fair
    sample of the inputs. Quantiles use at most 2**18 evenly spaced values per channel.
    Class frequencies count every label of the split.

    Returns:
        The manifest's ``reference`` fields: ``n`` (the samples the input statistics
        summarize), ``input_mean``, ``input_std``,
        ``input_quantiles`` (``p01``/``p50``/``p99``, each a list over channels),
        ``input_bin_edges`` / ``input_bin_freq`` (per channel: decile edges and the share of
        values in each bin, the PSI baseline) and ``class_freq`` (a list over classes, summing to 1).

    Example:
        >>> split = Split(torch.zeros(4, 2), torch.tensor([0, 1, 1, 1]))
        >>> reference_stats(split, num_classes=3)["class_freq"]
        [0.25, 0.75, 0.0]
    """
    x = split.x[:max_samples]
    # x: (n, c, h, w) or (n, f); stats per channel / feature over the other dims
    dims = [0, *range(2, x.dim())]
    mean = x.mean(dim=dims, dtype=torch.float64)
    std = x.std(dim=dims) if len(x) > 1 else torch.zeros(x.shape[1])
    # (n, c, h, w) -> (c, n*h*w) ; (n, f) -> (f, n)
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)
    step = max(1, -(-flat.shape[1] // _MAX_QUANTILE_VALUES))
    sample = flat[:, ::step].double()
    q = torch.quantile(sample, torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64), dim=1)
    edges, freq = bin_baseline(sample)
    counts = torch.bincount(split.y, minlength=num_classes).double()
    return {
        "n": int(len(x)),
        "input_mean": mean.tolist(),
        "input_std": std.double().tolist(),
        "input_quantiles": {"p01": q[0].tolist(), "p50": q[1].tolist(), "p99": q[2].tolist()},
        "input_bin_edges": edges,
        "input_bin_freq": freq,
        "class_freq": (counts / counts.sum().clamp(min=1)).tolist(),
    }


def prediction_stats(probs: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """Predicted-class shares, the top-1 confidence histogram (10 bins of [0, 1]) and its mean.

    Example:
        >>> prediction_stats(torch.tensor([[0.9, 0.1], [0.3, 0.7]]), 2)["prediction_freq"]
        [0.5, 0.5]
    """
    # probs: (n, classes)
    confidence, preds = probs.max(dim=1)
    counts = torch.bincount(preds, minlength=num_classes).double()
    hist = torch.histc(confidence.double(), bins=10, min=0.0, max=1.0)
    return {
        "prediction_freq": (counts / counts.sum().clamp(min=1)).tolist(),
        "confidence_hist": (hist / hist.sum().clamp(min=1)).tolist(),
        "mean_confidence": float(confidence.mean()),
    }


def bin_baseline(values: torch.Tensor) -> tuple[list[list[float]], list[list[float]]]:
    """Decile bin edges per row of ``values`` (channels, n) and the share of values in each bin.

    Equal deciles (a channel that is mostly one value) collapse into one edge, so a channel
    may have fewer than 10 bins. Bin ``i`` holds values in ``[edges[i-1], edges[i])``.
    """
    deciles = torch.tensor(_BIN_QUANTILES, dtype=torch.float64)
    q = torch.quantile(values, deciles, dim=1, interpolation="lower")
    edges, freq = [], []
    for row, cuts in zip(values, q.T, strict=True):
        unique = sorted({round(float(c) - _EDGE_NUDGE, 9) for c in cuts})
        index = torch.searchsorted(torch.tensor(unique, dtype=torch.float64), row.contiguous(), right=True)
        counts = torch.bincount(index, minlength=len(unique) + 1).double()
        edges.append(unique)
        freq.append((counts / counts.sum().clamp(min=1)).tolist())
    return edges, freq
