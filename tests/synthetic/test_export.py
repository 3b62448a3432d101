"""Files of synthetic recordings: mp4 + CSV round trip, read back by the generic reader."""

from __future__ import annotations

import csv
import dataclasses

import imageio
import numpy as np

from bigsmall_jax import synthetic as sy
from bigsmall_jax.datasets import readers
from bigsmall_jax.datasets.recording import AU_NAMES

# Small, fast settings: 96-pixel frames.
TINY = sy.SyntheticConfig(n_subjects=4, videos_per_subject=2, duration_s=2.0, frame_size=96)


def test_write_files_round_trip(tmp_path):
    rec = sy.generate_recording(2, 1, dataclasses.replace(TINY, duration_s=1.2))
    mp4, csv_path = sy.write_files(rec, tmp_path / "out")
    assert mp4.name == "S02_V1.mp4" and csv_path.name == "S02_V1.csv"
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:len(sy.CSV_COLUMNS)] == list(sy.CSV_COLUMNS)
    assert len(rows) == rec.num_frames
    np.testing.assert_allclose([float(r["bvp"]) for r in rows], rec.bvp, atol=1e-5)
    np.testing.assert_allclose([float(r["resp"]) for r in rows], rec.resp, atol=1e-5)
    np.testing.assert_allclose([float(r["hr_bpm"]) for r in rows], rec.hr_bpm, atol=1e-3)
    np.testing.assert_allclose([float(r["time_s"]) for r in rows], np.arange(rec.num_frames) / rec.fps, atol=1e-4)
    np.testing.assert_array_equal([[float(r[a]) for a in AU_NAMES] for r in rows], rec.au)
    assert tuple(int(rows[0][k]) for k in ("face_x", "face_y", "face_w", "face_h")) == rec.face_box
    frames = np.stack(list(imageio.v3.imiter(mp4, plugin="FFMPEG")))
    assert frames.shape == rec.frames.shape
    np.testing.assert_array_equal(frames, rec.frames)  # lossless
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_generic_reader_reads_written_files_back(tmp_path):
    rec = sy.generate_recording(0, 1, dataclasses.replace(TINY, duration_s=0.8))
    sy.write_files(rec, tmp_path)
    (back,) = list(readers.generic_recordings(tmp_path))
    np.testing.assert_array_equal(back.frames, rec.frames)
    np.testing.assert_allclose(back.bvp, rec.bvp, atol=1e-5)
    np.testing.assert_array_equal(back.au, rec.au)
    assert back.face_box == rec.face_box
