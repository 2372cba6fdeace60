"""An in-memory batch loader: whole batches indexed at once, no worker processes.

On a 2-core machine a DataLoader's per-sample ``__getitem__`` + collate (and its worker
processes) cost more than a small model's step; indexing a tensor with a batch of indices
does not. Order and augmentation are pure functions of (seed, epoch), which is what lets a
resumed run reproduce the same batches without saving loader state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler

from torchship.data.augment import augment_batch
from torchship.data.config import AugmentConfig
from torchship.data.dataset import Split
from torchship.errors import DataError


def stream_seed(*parts: int | str) -> int:
    """A 63-bit generator seed from (seed, epoch, purpose, ...), distinct for distinct tuples.

    ``seed * K + epoch`` would collide (seed 0 epoch K == seed 1 epoch 0); hashing does not.
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class _Indices(torch.utils.data.Dataset):
    """Just a length, which is all DistributedSampler looks at."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class BatchLoader:
    """Iterate (x, y) batches of a split; ``set_epoch`` picks the epoch's order and augmentation.

    Example:
        >>> split = Split(torch.arange(10.0).view(10, 1), torch.arange(10))
        >>> loader = BatchLoader(split, 4, shuffle=False)
        >>> len(loader), [y.tolist() for _, y in loader]
        (3, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        augment: AugmentConfig | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1:
            raise DataError(f"batch size {batch_size} is below 1", fix="use a batch size of at least 1")
        if world_size < 1 or not 0 <= rank < world_size:
            raise DataError(
                f"rank {rank} is not within world size {world_size}", fix="check the torchrun settings"
            )
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.augment = augment if augment is not None and augment.enabled else None
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.sampler: DistributedSampler | None = None
        if world_size > 1:
            # drop_last here means DistributedSampler's: trim to a multiple of world_size instead of padding
            self.sampler = DistributedSampler(
                _Indices(len(split)),
                num_replicas=world_size,
                rank=rank,
                shuffle=shuffle,
                seed=seed,
                drop_last=drop_last,
            )

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order (and augmentation) the next iteration yields."""
        self.epoch = epoch
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def indices(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch, in order."""
        if self.sampler is not None:
            return torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        if not self.shuffle:
            return torch.arange(len(self.split))
        gen = torch.Generator().manual_seed(stream_seed(self.seed, self.epoch, "order"))
        return torch.randperm(len(self.split), generator=gen)

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices()
        gen = None
        if self.augment is not None:
            gen = torch.Generator().manual_seed(stream_seed(self.seed, self.epoch, "augment", self.rank))
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            idx = order[start : start + self.batch_size]
            # x: (batch, *shape) ; y: (batch,)
            x = self.split.x[idx]
            if self.augment is not None:
                x = augment_batch(x, self.augment, gen)
            yield x, self.split.y[idx]


def make_loader(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    augment: AugmentConfig | None = None,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> BatchLoader:
    """The loader the training engine uses; see :class:`BatchLoader`.

    Args:
        seed: With the epoch (``set_epoch``), fixes the shuffle order and the augmentation.
        augment: Augmentations for training batches; None or all-off yields inputs unchanged.
        drop_last: Drop the last partial batch (and, with several ranks, trim instead of pad).
        rank: This process's rank when ``world_size`` > 1 (shards like DistributedSampler).
    """
    return BatchLoader(
        split,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        augment=augment,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
    )
