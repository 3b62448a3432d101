"""UBFC-rPPG reader: ``subjectN/vid.avi`` with the pulse-oximeter ground truth beside it.

Layout under `root` (DATASET_2, the one the rPPG-Toolbox reads): ``subjectN/vid.avi`` +
``subjectN/ground_truth.txt``, three rows: PPG, HR in beats/min, timestamps in s. Subject = the folder
name. With one PPG sample a frame (the release) the PPG is used as is, as the toolbox's ``UBFCrPPGLoader``
does (checked against its arrays); otherwise it and the HR are resampled to the frames by timestamp (the
toolbox would silently misalign them). DATASET_1 (``gtdump.xmp``) is not read: no published loader or
reference array fixes its column order.
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
    """(ppg, hr_bpm, times_s) of one UBFC-rPPG subject folder (DATASET_2's ``ground_truth.txt``)."""
    gt = folder / "ground_truth.txt"
    if not gt.is_file():
        extra = " (gtdump.xmp, UBFC DATASET_1, is not supported)" if (folder / "gtdump.xmp").is_file() else ""
        raise file_error(folder, f"no ground_truth.txt{extra}")
    try:
        data = np.loadtxt(gt, ndmin=2)
    except ValueError as e:
        raise file_error(gt, f"not a table of numbers ({e})") from None
    if data.shape[0] != 3:
        raise file_error(gt, f"expected 3 rows (PPG, HR, time in s), got {data.shape[0]}")
    return data[0], data[1], data[2]


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
        gt_path = d / "ground_truth.txt"
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
