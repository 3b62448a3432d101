"""Preprocessing: the reference recipe (golden file), face boxes, labels, clips, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from face_drawing import draw_face

from bigsmall_jax.datasets import face
from bigsmall_jax.datasets import face_boxes as fb
from bigsmall_jax.datasets import preprocess as pp
from bigsmall_jax.datasets.recording import Recording
from bigsmall_jax.errors import UserError

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(DATA / "preprocess_golden.npz"))


# ---------------------------------------------------------------------------------------------- golden recipe


def test_big_small_matches_reference(golden):
    big, small = pp.big_small(golden["frames"], pp.PreprocessConfig())
    assert big.dtype == np.float32 and small.dtype == np.float32
    assert big.shape == golden["big"].shape and small.shape == golden["small"].shape
    np.testing.assert_allclose(big, golden["big"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(small, golden["small"], atol=1e-4, rtol=0)


def test_reference_resizes_uint8_not_float(golden):
    """The documented finding: resizing float frames does not reproduce the reference, uint8 does."""
    frames = golden["frames"]
    as_float = pp.standardize(pp.resize_area([f.astype(np.float32) for f in frames], 144))
    as_u8 = pp.standardize(pp.resize_area(frames, 144))
    assert np.abs(as_u8 - golden["big"]).max() < 1e-5
    assert np.abs(as_float - golden["big"]).max() > 1e-3


def test_diff_normalize_label_matches_reference(golden):
    out = pp.diff_normalize_label(golden["wave"])
    assert out.shape == golden["wave_diffnorm"].shape
    np.testing.assert_allclose(out, golden["wave_diffnorm"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("block", [5, 256])
def test_preprocess_recording_streaming_equals_reference(golden, monkeypatch, block):
    """Block-wise streaming over the video (any block size) gives the whole-array reference result."""
    monkeypatch.setattr(pp, "_BLOCK", block)
    rec = Recording(name="g", subject="s", frames=golden["frames"], fps=25.0, bvp=golden["wave"][:12])
    video = pp.preprocess_recording(rec, pp.PreprocessConfig(face_crop="none"))
    assert video.big_u8.dtype == np.uint8 and video.big_u8.shape == (12, 144, 144, 3)
    big = pp.standardize_big(video.big_u8, video.big_mean, video.big_std)
    np.testing.assert_allclose(big, golden["big"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(video.small, golden["small"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(video.labels["bvp"], pp.diff_normalize_label(golden["wave"][:12]), atol=1e-6)


# ------------------------------------------------------------------------------------------ closed forms / loops


def test_diff_normalize_frames_plain_loop():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (5, 4, 3, 3)).astype(np.float32)
    x[2, 0, 0, 0] = 0.0
    x[3, 0, 0, 0] = 0.0  # 0 / (0 + 1e-7) = 0
    d = np.zeros((4, 4, 3, 3))
    for t in range(4):
        for idx in np.ndindex(4, 3, 3):
            a, b = float(x[t][idx]), float(x[t + 1][idx])
            d[t][idx] = (b - a) / (b + a + 1e-7)
    expected = np.concatenate([d / d.std(), np.zeros((1, 4, 3, 3))])
    out = pp.diff_normalize_frames(x)
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert np.all(out[-1] == 0)


def test_diff_normalize_constant_video_is_zero_not_nan():
    out = pp.diff_normalize_frames(np.full((4, 2, 2, 3), 7.0, np.float32))
    assert np.all(out == 0)
    big, small = pp.big_small(np.full((4, 10, 10, 3), 50, np.uint8), pp.PreprocessConfig(big_size=6, small_size=3))
    assert np.all(big == 0) and np.all(small == 0)


def test_diff_normalize_label_closed_form():
    # A ramp has constant differences (std 0): all zeros, no NaN.
    np.testing.assert_array_equal(pp.diff_normalize_label(np.arange(6.0)), np.zeros(6))
    # Differences alternating +1, -1 have std 1: the output is the differences themselves.
    wave = np.array([0.0, 1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(pp.diff_normalize_label(wave), [1, -1, 1, -1, 0])


def test_resize_area_integer_factor_is_block_mean():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    block_mean = x.reshape(2, 4, 2, 4, 2, 3).mean(axis=(2, 4))
    out = pp.resize_area(x, 4)
    assert out.shape == (2, 4, 4, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, block_mean, atol=1e-6)


def test_standardize_moments():
    x = np.random.default_rng(2).normal(3.0, 5.0, (4, 6, 6, 3)).astype(np.float32)
    z = pp.standardize(x)
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1.0) < 1e-5
    np.testing.assert_allclose(z, (x - x.mean()) / x.std(), atol=1e-5)


def test_standardize_big_equals_standardize_of_resized():
    big_u8 = np.random.default_rng(3).integers(0, 256, (3, 5, 5, 3), dtype=np.uint8)
    f = big_u8.astype(np.float64)
    out = pp.standardize_big(big_u8, f.mean(), f.std())
    np.testing.assert_allclose(out, pp.standardize(big_u8.astype(np.float32)), atol=1e-5)


# -------------------------------------------------------------------------------------------------- face boxes


def test_enlarge_box_closed_form():
    # Centred box 20x10 at (40, 45) in a 100x100 frame, x1.5: side 30 about the centre (50, 50).
    assert face.enlarge_box((40, 45, 20, 10), 1.5, 100, 100) == (35, 35, 30, 30)
    # Near the top-left corner the square is shifted inside, not shrunk.
    assert face.enlarge_box((0, 0, 20, 20), 1.5, 100, 100) == (0, 0, 30, 30)
    # Near the bottom-right corner.
    assert face.enlarge_box((85, 90, 10, 10), 2.0, 100, 100) == (80, 80, 20, 20)
    # Larger than the frame: the side is clipped to the smaller frame dimension, kept centred in x.
    assert face.enlarge_box((10, 10, 50, 50), 3.0, 60, 80) == (5, 0, 60, 60)  # centre (35, 35)


def test_detect_face_box_finds_cartoon_face():
    x, y, w, h = face.detect_face_box(draw_face(cx=150, cy=110, s=50))
    assert abs(x + w / 2 - 150) < 10 and abs(y + h / 2 - 110) < 10
    assert 80 < w < 140 and w == h


def test_no_face_is_user_error_naming_file_and_frame():
    frames = np.full((3, 64, 64, 3), 128, np.uint8)
    with pytest.raises(UserError, match=r"clip\.mp4.*frame 0"):
        fb.face_boxes(frames, pp.PreprocessConfig(face_crop="first"), source="clip.mp4")
    with pytest.raises(UserError, match=r"clip\.mp4"):
        fb.face_boxes(frames, pp.PreprocessConfig(face_crop="every", crop_every=1), source="clip.mp4")


def _moving_face_video():
    """6 frames: the face at the left for frames 0-2, at the right for frames 3-5."""
    left, right = draw_face(cx=100, cy=120, s=45), draw_face(cx=220, cy=120, s=45)
    return np.stack([left] * 3 + [right] * 3)


def test_face_boxes_modes():
    video = _moving_face_video()
    t, h, w = video.shape[:3]
    first = fb.face_boxes(video, pp.PreprocessConfig(face_crop="first"))
    every = fb.face_boxes(video, pp.PreprocessConfig(face_crop="every", crop_every=3))
    assert first.shape == (6, 4) and np.all(first == first[0])
    assert np.all(every[:3] == first[0])
    centre = every[:, 0] + every[:, 2] / 2
    assert np.all(np.abs(centre[:3] - 100) < 10) and np.all(np.abs(centre[3:] - 220) < 10)
    for b in every:  # square, 1.5 x the detector's box, inside the frame
        assert b[2] == b[3] and b[0] >= 0 and b[1] >= 0 and b[0] + b[2] <= w and b[1] + b[3] <= h
        assert 1.3 * 90 < b[2] < 1.5 * 130
    median = fb.face_boxes(video, pp.PreprocessConfig(face_crop="median", crop_every=1))
    assert np.all(median == median[0]) and abs(median[0, 0] + median[0, 2] / 2 - 160) < 12
    none = fb.face_boxes(video, pp.PreprocessConfig(face_crop="none"))
    assert np.all(none == [0, 0, w, h])
    known = fb.face_boxes(video, pp.PreprocessConfig(face_crop="box", enlarge=2.0), known_box=(10, 20, 30, 40))
    assert np.all(known == [0, 0, 80, 80])  # centre (25, 40), side 80, shifted into the frame
    with pytest.raises(UserError, match="face_box"):
        fb.face_boxes(video, pp.PreprocessConfig(face_crop="box"), source="v.mp4")


def test_crop_frames_views_and_lists():
    frames = np.arange(2 * 6 * 8 * 3, dtype=np.uint8).reshape(2, 6, 8, 3)
    same = face.crop_frames(frames, np.array([[1, 2, 3, 3], [1, 2, 3, 3]]))
    np.testing.assert_array_equal(same, frames[:, 2:5, 1:4])
    diff = face.crop_frames(frames, np.array([[0, 0, 2, 2], [4, 1, 4, 4]]))
    assert isinstance(diff, list)
    np.testing.assert_array_equal(diff[1], frames[1, 1:5, 4:8])


def test_preprocess_recording_crops_the_detected_face():
    frames = np.stack([draw_face(cx=150, cy=120, s=50)] * 4)
    frames[:, :, :, 0] += np.arange(4, dtype=np.uint8)[:, None, None]  # frames differ a little
    cfg = pp.PreprocessConfig(big_size=16, small_size=4)
    video = pp.preprocess_recording(Recording("v", "s", frames, 30.0, source="v.mp4"), cfg)
    x, y, w, h = face.enlarge_box(face.detect_face_box(frames[0]), 1.5, 240, 320)
    expected = np.stack([cv2.resize(f[y : y + h, x : x + w], (16, 16), interpolation=cv2.INTER_AREA) for f in frames])
    np.testing.assert_array_equal(video.big_u8, expected)
    big, small = pp.big_small(frames[:, y : y + h, x : x + w], cfg)
    np.testing.assert_allclose(pp.standardize_big(video.big_u8, video.big_mean, video.big_std), big, atol=1e-5)
    np.testing.assert_allclose(video.small, small, atol=1e-5)


# ---------------------------------------------------------------------------------------------------- labels


def _rec(t=6, **kw):
    frames = np.random.default_rng(4).integers(1, 255, (t, 12, 12, 3), dtype=np.uint8)
    return Recording(name="r", subject="s", frames=frames, fps=25.0, source="r.mat", **kw)


def test_labels_bvp_key_and_reference():
    t = 6
    bp = np.sin(np.arange(t))
    pos_env = np.cos(np.arange(t) * 0.7)
    au = np.zeros((t, 12), np.float32)
    au[2, 3], au[4, 0] = 1.0, np.nan
    rec = _rec(t, bvp=bp, resp=np.arange(t) ** 2.0, au=au, hr_bpm=np.full(t, 70.0),
               extra={"pos_env_norm_bvp": pos_env})
    video = pp.preprocess_recording(rec, pp.PreprocessConfig(face_crop="none", big_size=8), "pos_env_norm_bvp")
    np.testing.assert_allclose(video.labels["bvp"], pp.diff_normalize_label(pos_env), atol=1e-6)
    np.testing.assert_allclose(video.labels["bvp_ref"], pp.diff_normalize_label(bp), atol=1e-6)
    np.testing.assert_allclose(video.labels["resp"], pp.diff_normalize_label(np.arange(t) ** 2.0), atol=1e-6)
    np.testing.assert_array_equal(video.labels["au"], au)
    np.testing.assert_array_equal(video.labels["hr_bpm"], np.full(t, 70.0))
    assert "rr_bpm" not in video.labels


@pytest.mark.parametrize(
    ("rec_kwargs", "bvp_key", "pattern"),
    [
        ({"bvp": np.zeros(5)}, "bvp", r"r\.mat.*'bvp'.*\(5,\).*6 frames"),
        ({"bvp": np.array([0, 1, np.nan, 1, 0, 1.0])}, "bvp", r"r\.mat.*'bvp'.*NaN.*frame 2"),
        ({"resp": np.array([0, 1, 2, np.inf, 0, 1.0])}, "bvp", r"r\.mat.*'resp'"),
        ({"au": np.full((6, 12), 9.0)}, "bvp", r"r\.mat.*'au'"),
        ({"bvp": np.zeros(6)}, "pos_env_norm_bvp", r"r\.mat.*pos_env_norm_bvp.*available: bvp"),
    ],
)
def test_bad_labels_are_user_errors(rec_kwargs, bvp_key, pattern):
    with pytest.raises(UserError, match=pattern):
        pp.preprocess_recording(_rec(6, **rec_kwargs), pp.PreprocessConfig(face_crop="none"), bvp_key)


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((0, 8, 8, 3), np.uint8),
        np.zeros((3, 8, 8, 3), np.float32),
        np.zeros((3, 8, 8), np.uint8),
        np.zeros((3, 8, 8, 4), np.uint8),
    ],
)
def test_bad_frames_are_user_errors(frames):
    with pytest.raises(UserError, match=r"^v\.mp4: "):
        rec = Recording("v", "s", frames, 30.0, source="v.mp4")
        pp.preprocess_recording(rec, pp.PreprocessConfig(face_crop="none"))


def test_config_validation():
    with pytest.raises(UserError, match="face_crop.*valid: first"):
        pp.PreprocessConfig(face_crop="eyes")
    with pytest.raises(UserError, match="tail"):
        pp.PreprocessConfig(tail="wrap")
    with pytest.raises(UserError, match="n_segment"):
        pp.PreprocessConfig(n_segment=0)


# ----------------------------------------------------------------------------------------------------- clips


def _video(t=10):
    big = np.arange(t, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    small = np.arange(t, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 3), np.float32)
    labels = {"bvp": np.arange(t, dtype=np.float32) * 10, "au": np.arange(t * 12, dtype=np.float32).reshape(t, 12)}
    return pp.PreprocessedVideo("v", "s", 25.0, big, 1.0, 2.0, small, labels)


def test_chunk_video_drop():
    chunks = pp.chunk_video(_video(10), 3, "drop")
    assert len(chunks) == 3
    for i, c in enumerate(chunks):
        frames = np.arange(3 * i, 3 * i + 3)
        assert c["chunk_index"] == i
        np.testing.assert_array_equal(c["big_u8"][:, 0, 0, 0], frames)
        np.testing.assert_array_equal(c["small"][:, 0, 0, 0], frames)
        np.testing.assert_array_equal(c["labels"]["bvp"], frames * 10)
        np.testing.assert_array_equal(c["labels"]["au"][:, 0], frames * 12)
        np.testing.assert_array_equal(c["frame_mask"], [1, 1, 1])


def test_chunk_video_pad():
    chunks = pp.chunk_video(_video(10), 3, "pad")
    assert len(chunks) == 4
    last = chunks[-1]
    np.testing.assert_array_equal(last["big_u8"][:, 0, 0, 0], [9, 9, 9])
    np.testing.assert_array_equal(last["labels"]["bvp"], [90, 90, 90])
    np.testing.assert_array_equal(last["frame_mask"], [1, 0, 0])
    assert len(pp.chunk_video(_video(9), 3, "pad")) == 3  # no tail: nothing padded
    assert pp.chunk_video(_video(2), 3, "drop") == []
    assert len(pp.chunk_video(_video(2), 3, "pad")) == 1


@pytest.mark.parametrize("mean,std", [(117.3, 41.9), (0.0, 1.0), (12.0, 0.0), (3.0, float("nan"))])
def test_standardize_big_table_is_bit_exact(mean, std):
    """uint8 input goes through a 256-entry table: the same float32 values as the per-pixel formula, and 0
    where std is 0 or NaN (as the reference sets NaN/inf to 0)."""
    big_u8 = np.random.default_rng(4).integers(0, 256, (2, 7, 7, 3), dtype=np.uint8)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = ((big_u8.astype(np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)
    want[~np.isfinite(want)] = 0.0
    got = pp.standardize_big(big_u8, mean, std)
    assert got.dtype == np.float32 and got.shape == big_u8.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(pp.standardize_big(big_u8.astype(np.float32), mean, std), want)
