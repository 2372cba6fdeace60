"""The in-memory loader: determinism per (seed, epoch), DDP sharding, augmentation."""

from __future__ import annotations

import pytest
import torch

from torchship.data import AugmentConfig, Split, make_loader
from torchship.errors import DataError


@pytest.fixture
def split():
    # x: (n, 1, 6, 6) whose every pixel holds the sample index, so batches reveal their indices
    n = 50
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 6, 6).contiguous()
    return Split(x, torch.arange(n) % 5)


def _epoch(loader, epoch):
    loader.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in loader]


def _ids(batches):
    return torch.cat([x[:, 0, 0, 0] for x, _ in batches]).long()


def test_unshuffled_order_and_len(split):
    loader = make_loader(split, 16, shuffle=False)
    batches = list(loader)
    assert len(loader) == len(batches) == 4
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    assert torch.equal(_ids(batches), torch.arange(50))
    assert len(make_loader(split, 16, shuffle=False, drop_last=True)) == 3


def test_shuffle_is_a_function_of_seed_and_epoch(split):
    a = make_loader(split, 8, shuffle=True, seed=3)
    b = make_loader(split, 8, shuffle=True, seed=3)
    first, again = _ids(_epoch(a, 2)), _ids(_epoch(b, 2))
    assert torch.equal(first, again)  # a "resumed" loader at epoch 2 gives the same batches
    assert sorted(first.tolist()) == list(range(50))
    assert not torch.equal(first, _ids(_epoch(a, 3)))
    assert not torch.equal(first, _ids(_epoch(make_loader(split, 8, shuffle=True, seed=4), 2)))
    assert torch.equal(_ids(_epoch(a, 2)), first)  # going back to an epoch replays it


def test_labels_travel_with_their_inputs(split):
    for x, y in make_loader(split, 7, shuffle=True, seed=1):
        assert torch.equal(y, x[:, 0, 0, 0].long() % 5)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("n", [50, 51])
def test_ddp_shards_are_disjoint_and_cover_the_data(n, shuffle):
    split = Split(torch.arange(n, dtype=torch.float32).view(n, 1), torch.zeros(n, dtype=torch.long))
    shards = []
    for rank in range(2):
        loader = make_loader(split, 4, shuffle=shuffle, seed=7, rank=rank, world_size=2)
        loader.set_epoch(1)
        shards.append(torch.cat([x[:, 0] for x, _ in loader]).long())
        assert len(loader) == -(-len(shards[-1]) // 4)
    assert len(shards[0]) == len(shards[1]) == -(-n // 2)  # DistributedSampler pads to equal shards
    covered = set(shards[0].tolist()) | set(shards[1].tolist())
    assert covered == set(range(n))
    overlap = set(shards[0].tolist()) & set(shards[1].tolist())
    assert len(overlap) == (n % 2)  # only the padding sample repeats


def test_ddp_drop_last_trims_instead_of_padding():
    split = Split(torch.arange(51, dtype=torch.float32).view(51, 1), torch.zeros(51, dtype=torch.long))
    shards = [
        torch.cat(
            [x[:, 0] for x, _ in make_loader(split, 5, shuffle=True, rank=r, world_size=2, drop_last=True)]
        )
        for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 25
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_ddp_shards_follow_the_epoch():
    split = Split(torch.arange(40, dtype=torch.float32).view(40, 1), torch.zeros(40, dtype=torch.long))
    loader = make_loader(split, 40, shuffle=True, seed=0, rank=0, world_size=2)
    assert not torch.equal(_epoch(loader, 0)[0][0], _epoch(loader, 1)[0][0])


AUG = AugmentConfig(crop_padding=2, hflip=True, rotate_deg=10, noise_std=0.1)


def test_augmentation_changes_inputs_keeps_shapes_and_is_reproducible(split):
    plain = _epoch(make_loader(split, 10, shuffle=True, seed=1), 4)
    augmented = _epoch(make_loader(split, 10, shuffle=True, seed=1, augment=AUG), 4)
    replay = _epoch(make_loader(split, 10, shuffle=True, seed=1, augment=AUG), 4)
    for (xp, yp), (xa, ya), (xr, _) in zip(plain, augmented, replay, strict=True):
        assert xa.shape == xp.shape
        assert torch.equal(ya, yp)
        assert not torch.equal(xa, xp)
        assert torch.equal(xa, xr)
    other_epoch = _epoch(make_loader(split, 10, shuffle=True, seed=1, augment=AUG), 5)
    assert not torch.equal(augmented[0][0], other_epoch[0][0])


def test_disabled_augmentation_leaves_the_data_alone(split):
    x, _ = next(iter(make_loader(split, 50, shuffle=False, augment=AugmentConfig())))
    assert torch.equal(x, split.x)


def test_the_split_itself_is_never_modified(split):
    before = split.x.clone()
    for _ in make_loader(split, 10, shuffle=True, augment=AUG):
        pass
    assert torch.equal(split.x, before)


def test_noise_applies_to_feature_vectors():
    split = Split(torch.zeros(20, 3), torch.zeros(20, dtype=torch.long))
    x, _ = next(iter(make_loader(split, 20, shuffle=False, augment=AugmentConfig(noise_std=1.0, hflip=True))))
    assert x.shape == (20, 3)
    assert 0.5 < x.std() < 1.5


def test_bad_loader_arguments(split):
    with pytest.raises(DataError, match="batch size 0"):
        make_loader(split, 0, shuffle=True)
    with pytest.raises(DataError, match="rank 2 is not within world size 2"):
        make_loader(split, 4, shuffle=True, rank=2, world_size=2)
