"""Data parallelism: batch sharding by whole clips, batch size checks."""

from __future__ import annotations

import numpy as np
import pytest

from bigsmall_jax.errors import UserError
from bigsmall_jax.train.parallel import check_batch_divisible, shard_batch


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
