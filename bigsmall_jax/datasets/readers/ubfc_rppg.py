"""UBFC-rPPG reader: ``subjectN/vid.avi`` with the pulse-oximeter ground truth beside it.

Layout under `root`: ``subjectN/vid.avi`` + ``subjectN/ground_truth.txt`` (DATASET_2: three rows, PPG, HR
in beats/min, timestamps in s), or ``subjectN/gtdump.xmp`` (DATASET_1: comma-separated columns time in ms,
HR, SpO2, PPG). Subject = the folder name. PPG and HR are resampled to the frames by timestamp unless
there is one sample per frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from bigsmall_jax.datasets.readers.common import Reader, dataset_root, per_frame, resample_to_frames, subject_filter
from bigsmall_jax.datasets.recording import Recording
from bigsmall_jax.datasets.video_io import read_video
from bigsmall_jax.errors import file_error


def _ubfc_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and (d / "vid.avi").is_file())


def read_ubfc_ground_truth(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ppg, hr_bpm, times_s) of one UBFC-rPPG subject folder (DATASET_2 or DATASET_1 layout)."""
    gt2, gt1 = folder / "ground_truth.txt", folder / "gtdump.xmp"
    if gt2.is_file():
        try:
            data = np.loadtxt(gt2, ndmin=2)
        except ValueError as e:
            raise file_error(gt2, f"not a table of numbers ({e})") from None
        if data.shape[0] != 3:
            raise file_error(gt2, f"expected 3 rows (PPG, HR, time in s), got {data.shape[0]}")
        return data[0], data[1], data[2]
    if gt1.is_file():
        try:
            data = np.loadtxt(gt1, delimiter=",", ndmin=2)
        except ValueError as e:
            raise file_error(gt1, f"not comma-separated numbers ({e})") from None
        if data.shape[1] < 4:
            raise file_error(gt1, f"expected 4 columns (time ms, HR, SpO2, PPG), got {data.shape[1]}")
        return data[:, 3], data[:, 1], data[:, 0] / 1000.0
    raise file_error(folder, "no ground_truth.txt (or gtdump.xmp)")


def ubfc_rppg_subjects(root: str | os.PathLike) -> list[str]:
    """Sorted subject folder names (``subject1``, ...) that hold a ``vid.avi``."""
    return [d.name for d in _ubfc_dirs(dataset_root(root))]


def ubfc_rppg_recordings(root: str | os.PathLike, subjects: Iterable[str] | None = None) -> Iterator[Recording]:
    """UBFC-rPPG subjects; the PPG and HR resampled to the video frames by timestamp."""
    root = dataset_root(root)
    keep = subject_filter(subjects)
    for d in _ubfc_dirs(root):
        if not keep(d.name):
            continue
        ppg, hr, times = read_ubfc_ground_truth(d)
        frames, fps = read_video(d / "vid.avi")
        t = frames.shape[0]
        gt_path = d / ("ground_truth.txt" if (d / "ground_truth.txt").is_file() else "gtdump.xmp")
        if ppg.size == t:  # one sample per frame: already aligned
            bvp = per_frame(ppg, "PPG", t, gt_path)
            hr_bpm = per_frame(hr, "HR", t, gt_path)
        else:
            rel = times - times[0]
            ft = np.arange(t) / fps
            bvp = resample_to_frames(rel, ppg, ft, "PPG", gt_path)
            hr_bpm = resample_to_frames(rel, hr, ft, "HR", gt_path)
        yield Recording(name=d.name, subject=d.name, frames=frames, fps=fps, bvp=bvp, hr_bpm=hr_bpm,
                        source=str(d / "vid.avi"))


READER = Reader(ubfc_rppg_recordings, ubfc_rppg_subjects)
