"""Data parallelism: batch sharding by whole clips, batch size checks."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bigsmall_jax.errors import UserError
from bigsmall_jax.train.parallel import check_batch_divisible, prefetch_to_devices, shard_batch


def test_shard_batch_keeps_whole_clips_in_order():
    frames = np.arange(8 * 3)  # 8 clips of 3 frames, frame i has value i
    sharded = shard_batch({"x": frames, "y": np.stack([frames] * 2, 1)}, 4, 3)
    assert sharded["x"].shape == (4, 6) and sharded["y"].shape == (4, 6, 2)
    for d in range(4):  # device d: clips 2d and 2d+1, i.e. frames 6d .. 6d+5
        np.testing.assert_array_equal(sharded["x"][d], np.arange(6 * d, 6 * d + 6))
    with pytest.raises(UserError, match="cannot be split evenly over 3 devices"):
        shard_batch({"x": frames}, 3, 3)


def test_batch_not_divisible_by_devices_names_both_numbers():
    with pytest.raises(UserError, match=r"batch_clips=6 .* 4 devices"):
        check_batch_divisible(6, 4)
    check_batch_divisible(8, 4)


def test_shard_batch_splits_per_clip_rows_by_the_same_clips():
    """With Big downsampling the loader sends one Big row per clip: device d gets the Big rows of its clips."""
    small = np.arange(8 * 3)  # 8 clips of 3 frames
    big = np.arange(8) * 100  # one row per clip
    sharded = shard_batch({"small": small, "big": big}, 4, 3)
    for d in range(4):
        np.testing.assert_array_equal(sharded["small"][d], np.arange(6 * d, 6 * d + 6))
        np.testing.assert_array_equal(sharded["big"][d], [200 * d, 200 * d + 100])
    with pytest.raises(UserError, match="'big' has 5 rows"):
        shard_batch({"small": small, "big": np.arange(5)}, 4, 3)


class _Batches:
    """A loader iterator of 5 one-clip batches whose position is the number of batches read."""

    def __init__(self):
        self.read = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.read == 5:
            raise StopIteration
        self.read += 1
        return {"small": np.full((3, 1), self.read, np.float32)}

    def get_state(self):
        return self.read


def test_prefetch_to_devices_runs_ahead_and_hands_the_position_of_each_batch():
    batches = _Batches()
    got = []
    for batch, position in prefetch_to_devices(batches, 3, size=2, devices=jax.local_devices()[:1]):
        assert isinstance(batch["small"], jax.Array) and batch["small"].shape == (1, 3, 1)
        # The position to checkpoint after training on this batch: the batches read up to it, while the
        # iterator itself is up to two batches further.
        value = int(batch["small"][0, 0, 0])
        assert position == value and batches.read == min(5, value + 2)
        got.append(value)
    assert got == [1, 2, 3, 4, 5]
