"""The memory benchmark's pieces: the looped long video and the options (no memory assertions here: the
figures belong to ``python -m bigsmall_jax.benchmark``; the measured child runs infer_video, tested in
tests/inference)."""

from __future__ import annotations

import numpy as np
import pytest

from bigsmall_jax.benchmark import memory
from bigsmall_jax.benchmark.__main__ import parse_args
from bigsmall_jax.datasets.video_io import VideoFrames
from bigsmall_jax.errors import UserError


def test_looped_video_has_the_length_asked_and_repeats(tmp_path):
    path = tmp_path / "long.mp4"
    n = memory.write_looped_video(path, minutes=0.1, height=48, width=64, fps=30.0)  # 6 s: 3 loops of 2 s
    assert n == 180 and [p.name for p in tmp_path.iterdir()] == ["long.mp4"]
    source = VideoFrames(path)
    frames = np.concatenate([b.copy() for b in source.blocks(50)])
    assert source.fps == pytest.approx(30.0) and frames.shape == (180, 48, 64, 3)
    np.testing.assert_array_equal(frames[:60], frames[60:120])  # packets copied, not re-encoded
    assert np.any(frames[0] != frames[1])  # the pattern moves


def test_memory_minutes_options():
    assert parse_args([]).memory_minutes == list(memory.MEMORY_MINUTES)
    assert parse_args(["--quick"]).memory_minutes == []
    assert parse_args(["--quick", "--memory-minutes", "0.5"]).memory_minutes == [0.5]
    assert parse_args(["--memory-minutes", "2", "--no-memory"]).memory_minutes == []
    with pytest.raises(UserError, match="--memory-minutes must be in"):
        parse_args(["--memory-minutes", "0"])
