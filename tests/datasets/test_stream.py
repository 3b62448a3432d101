"""Block-wise decoding and preprocessing (`datasets.stream`) against the whole-video recipe, and its memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from face_drawing import draw_face

from bigsmall_jax.datasets.preprocess import PreprocessConfig, preprocess_recording
from bigsmall_jax.datasets.recording import Recording
from bigsmall_jax.datasets.stream import scan_video
from bigsmall_jax.datasets.video_io import ArrayFrames, VideoFrames, read_video, write_video

FPS = 25.0


def _moving_face_video(t: int, seed: int = 0) -> np.ndarray:
    """(t, 120, 160, 3) uint8: a face drifting right with noise and a flicker, and a blank frame at 100
    (a detection frame with no face, which "every" fills from the nearest detection)."""
    rng = np.random.default_rng(seed)
    frames = np.empty((t, 120, 160, 3), np.uint8)
    for i in range(t):
        face = draw_face(120, 160, 70 + i // 20, 60, 30).astype(np.int16)
        flicker = int(3 * np.sin(2 * np.pi * 1.2 * i / FPS))
        frames[i] = np.clip(face + flicker + rng.integers(-3, 4, face.shape), 0, 255)
    frames[100] = 90
    return frames


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    """(lossless mp4 of 300 frames, its frames): more than one 256-frame statistics block."""
    frames = _moving_face_video(300)
    path = tmp_path_factory.mktemp("stream") / "face.mp4"
    write_video(path, frames, FPS, lossless=True)
    return path, frames


def _streamed(video, config, block_frames):
    """(boxes, big_u8, small, (mean, std)) of the block-wise path, model inputs concatenated."""
    scanned = scan_video(video, config, block_frames=block_frames)
    blocks = list(scanned.blocks())
    assert all(len(b) == len(s) for b, s in blocks)
    big = np.concatenate([b for b, _ in blocks])
    small = np.concatenate([s for _, s in blocks])
    return scanned.boxes, big, small, (scanned.big_mean, scanned.big_std)


@pytest.mark.parametrize("mode,block_frames", [("first", 7), ("every", 32), ("median", 300), ("none", 1)])
def test_block_wise_equals_whole_video(face_video, mode, block_frames):
    """Decoded from the file in blocks of any size, the boxes, Big frames, Big statistics and Small frames
    are the bits `preprocess_recording` computes on the whole decoded video."""
    path, frames = face_video
    config = PreprocessConfig(big_size=36, small_size=5, face_crop=mode, crop_every=50)
    decoded, _ = read_video(path)
    np.testing.assert_array_equal(decoded, frames)  # lossless
    whole = preprocess_recording(Recording(name="face", subject="s", frames=decoded, fps=FPS), config)
    boxes, big, small, (mean, std) = _streamed(VideoFrames(path), config, block_frames)
    np.testing.assert_array_equal(big, whole.big_u8)
    np.testing.assert_array_equal(small, whole.small)
    assert (mean, std) == (whole.big_mean, whole.big_std)
    assert np.all(small[-1] == 0) and np.any(small[:-1] != 0)
    if mode == "every":  # the face moves: several boxes, and frame 100 (no face) took its neighbour's
        assert len(np.unique(boxes, axis=0)) > 1
    if mode == "none":
        assert np.all(boxes == [0, 0, 160, 120])
    # The same through ArrayFrames (what infer_frames uses).
    _, big2, small2, _ = _streamed(ArrayFrames(frames, FPS), config, block_frames)
    np.testing.assert_array_equal(big2, big)
    np.testing.assert_array_equal(small2, small)


def test_memory_does_not_grow_with_the_video():
    """The whole block-wise path over 300 frames of 120x160 (17 MB) allocates far less than the frames: one
    block of decoded frames and the per-frame boxes, whatever the length (numpy reports to tracemalloc)."""
    frames = _moving_face_video(300)
    config = PreprocessConfig(big_size=36, small_size=5, face_crop="first")

    def peak(n: int) -> int:
        source = ArrayFrames(frames[:n], FPS)
        tracemalloc.start()
        try:
            scanned = scan_video(source, config, block_frames=16)
            for _ in scanned.blocks():
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = peak(100), peak(300)
    assert long < frames.nbytes / 8
    assert long < 1.2 * short + 64 * 1024  # the extra 200 frames add only their boxes (32 bytes each)
