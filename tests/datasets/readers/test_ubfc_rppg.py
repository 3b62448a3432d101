"""UBFC-rPPG reader: ground truth per frame and resampled by timestamp; DATASET_1 refused."""

from __future__ import annotations

import numpy as np
import pytest

from bigsmall_jax.datasets import registry
from bigsmall_jax.datasets.video_io import write_video
from bigsmall_jax.errors import UserError

T, H, W = 6, 8, 10


def _frames(t=T, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, H, W, 3), dtype=np.uint8)


def _ubfc_subject(root, name, frames, gt_rows=None, gtdump=None, fps=30.0):
    d = root / name
    d.mkdir(parents=True)
    write_video(d / "vid.avi", frames, fps, lossless=True)
    if gt_rows is not None:
        np.savetxt(d / "ground_truth.txt", np.asarray(gt_rows))
    if gtdump is not None:
        np.savetxt(d / "gtdump.xmp", np.asarray(gtdump), delimiter=",")


def test_ubfc_rppg_per_frame_ground_truth(tmp_path):
    frames = _frames()
    ppg = np.sin(np.arange(T))
    hr = 60 + np.arange(T, dtype=float)
    _ubfc_subject(tmp_path, "subject3", frames, gt_rows=[ppg, hr, np.arange(T) / 30.0])
    _ubfc_subject(tmp_path, "subject10", _frames(seed=2), gt_rows=[ppg, hr, np.arange(T) / 30.0])
    (tmp_path / "readme").mkdir()  # not a subject: no vid.avi
    assert registry.list_subjects("ubfc_rppg", tmp_path) == ["subject10", "subject3"]
    rec = list(registry.iter_recordings("ubfc_rppg", tmp_path, subjects={"subject3"}))[0]
    assert rec.name == rec.subject == "subject3" and rec.fps == pytest.approx(30.0)
    np.testing.assert_array_equal(rec.frames, frames)
    np.testing.assert_allclose(rec.bvp, ppg, rtol=1e-12)
    np.testing.assert_allclose(rec.hr_bpm, hr, rtol=1e-12)


def test_ubfc_rppg_resamples_by_timestamp(tmp_path):
    """PPG sampled at 60 Hz as a linear function of time: resampled at the 30 fps frame times exactly."""
    ts = 0.25 + np.arange(2 * T + 3) / 60.0  # starts at 0.25 s: times are taken relative to the first
    ppg = 3.0 * (ts - 0.25) + 1.0
    hr = np.full(ts.size, 75.0)
    _ubfc_subject(tmp_path, "subject1", _frames(), gt_rows=[ppg, hr, ts])
    (rec,) = registry.iter_recordings("ubfc_rppg", tmp_path)
    np.testing.assert_allclose(rec.bvp, 3.0 * np.arange(T) / 30.0 + 1.0, atol=1e-9)
    np.testing.assert_allclose(rec.hr_bpm, 75.0)


def test_ubfc_rppg_dataset1_is_refused(tmp_path):
    """DATASET_1's gtdump.xmp has no published loader or reference array to fix its columns: not read."""
    _ubfc_subject(tmp_path, "s1", _frames(), gtdump=np.zeros((2 * T, 4)))
    with pytest.raises(UserError, match=r"s1: no ground_truth\.txt \(gtdump\.xmp, UBFC DATASET_1, is not supported\)"):
        list(registry.iter_recordings("ubfc_rppg", tmp_path))


def test_ubfc_rppg_bad_ground_truth(tmp_path):
    _ubfc_subject(tmp_path, "subject1", _frames(), gt_rows=[np.zeros(T), np.zeros(T)])
    with pytest.raises(UserError, match=r"ground_truth\.txt: expected 3 rows"):
        list(registry.iter_recordings("ubfc_rppg", tmp_path))
    (tmp_path / "subject1" / "ground_truth.txt").unlink()
    with pytest.raises(UserError, match=r"subject1: no ground_truth\.txt"):
        list(registry.iter_recordings("ubfc_rppg", tmp_path))
    np.savetxt(tmp_path / "subject1" / "ground_truth.txt", [[0, np.nan, 0, 1], [70] * 4, [0, 0.1, 0.2, 0.3]])
    with pytest.raises(UserError, match=r"ground_truth\.txt: label 'PPG' has NaN"):
        list(registry.iter_recordings("ubfc_rppg", tmp_path))
