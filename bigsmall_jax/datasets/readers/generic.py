"""Generic reader: any video files with optional CSV labels (the layout the synthetic generator writes).

Layout under `root`: any video file ``<stem>.mp4`` (or .avi, .mkv, ...) with an optional ``<stem>.csv`` of
labels (columns among ``bvp``, ``resp``, ``hr_bpm``, ``rr_bpm`` and the AU names of `AU_NAMES`; ``frame``
and ``time_s`` are bookkeeping; ``face_x, face_y, face_w, face_h`` give a known face box; any other numeric
column goes to `Recording.extra`). A CSV with one row per frame is used as is; otherwise it needs a
``time_s`` column (seconds) and is resampled to the frame times (linear; nearest sample for AUs). Label
times that do not fit the video (milliseconds, a retimed video, labels covering only part of it) are an
error (`common.check_label_times`, `common.check_frame_times`). Subject: from
``subject_map``, else ``subjects.csv`` in `root` (columns ``name,subject``), else the file stem.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from bigsmall_jax.datasets.readers.common import (
    Reader,
    au_codes_to_labels,
    check_frame_times,
    dataset_root,
    per_frame,
    resample_to_frames,
    subject_filter,
)
from bigsmall_jax.datasets.recording import AU_NAMES, Recording
from bigsmall_jax.datasets.video_io import VIDEO_EXTENSIONS, read_video
from bigsmall_jax.errors import file_error

log = logging.getLogger(__name__)


_KNOWN = ("bvp", "resp", "hr_bpm", "rr_bpm")
_BOOKKEEPING = ("frame", "time_s")
_FACE_COLS = ("face_x", "face_y", "face_w", "face_h")
_AU_COL = re.compile(r"^AU\d+$")


def read_label_csv(path: Path) -> dict[str, np.ndarray]:
    """A CSV with a header -> {column: (N,) float64}; empty cells are NaN."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise file_error(path, f"cannot read ({e})") from None
    while rows and not any(c.strip() for c in rows[-1]):  # trailing blank lines
        rows.pop()
    if not rows:
        raise file_error(path, "CSV is empty (needs a header line)")
    header = [c.strip() for c in rows[0]]
    if len(header) == 1:  # one column: a blank line is an empty cell
        rows = [r if r else [""] for r in rows]
    if len(set(header)) != len(header):
        raise file_error(path, f"duplicate column names in {header}")
    cols: dict[str, list[float]] = {h: [] for h in header}
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise file_error(path, f"line {i} has {len(row)} fields, the header {len(header)}")
        for h, cell in zip(header, row, strict=True):
            cell = cell.strip()
            try:
                cols[h].append(float(cell) if cell else math.nan)
            except ValueError:
                raise file_error(path, f"line {i}, column {h!r}: not a number: {cell!r}") from None
    return {h: np.asarray(v, np.float64) for h, v in cols.items()}


def _generic_videos(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in dataset_root(root).iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


def _subject_map(root: Path, subject_map: Mapping[str, str] | None) -> dict[str, str]:
    if subject_map is not None:
        return {str(k): str(v) for k, v in subject_map.items()}
    path = (root if root.is_dir() else root.parent) / "subjects.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"name", "subject"} <= set(reader.fieldnames):
            raise file_error(path, "expected columns 'name,subject'")
        return {r["name"].strip(): r["subject"].strip() for r in reader}


def generic_subjects(root: str | os.PathLike, subject_map: Mapping[str, str] | None = None) -> list[str]:
    """Sorted subject ids of the videos under `root` (see the module docstring for the mapping)."""
    root = Path(root)
    mapping = _subject_map(root, subject_map)
    return sorted({mapping.get(p.stem, p.stem) for p in _generic_videos(root)})


def generic_labels(table: dict[str, np.ndarray], t: int, fps: float, path: Path) -> dict:
    """Per-frame labels from a label table: `Recording` keyword arguments (bvp, resp, au, ..., extra)."""
    n = len(next(iter(table.values()))) if table else 0
    if n != t:
        if "time_s" not in table:
            raise file_error(path, f"{n} label rows but the video has {t} frames (add a time_s column to "
                                   "resample by time)")
        st, ft = table["time_s"], np.arange(t) / fps

        def col(name, nearest=False):
            return resample_to_frames(st, table[name], ft, name, path, nearest=nearest)
    else:
        if "time_s" in table:
            check_frame_times(table["time_s"], fps, path)

        def col(name, nearest=False):
            return per_frame(table[name], name, t, path, allow_nan=nearest)

    out: dict = {"extra": {}}
    for name in _KNOWN:
        if name in table:
            out[name] = col(name)
    au_present = [a for a in AU_NAMES if a in table]
    if au_present:
        out["au"] = np.stack([au_codes_to_labels(col(a, nearest=True)) if a in table
                              else np.full(t, np.nan, np.float32) for a in AU_NAMES], axis=1)
    if all(c in table for c in _FACE_COLS):
        box = [table[c][0] for c in _FACE_COLS]
        if not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
            raise file_error(path, f"invalid face box {box}")
        out["face_box"] = tuple(int(round(v)) for v in box)
    for name in table:
        if name in _KNOWN or name in _BOOKKEEPING or name in _FACE_COLS or _AU_COL.match(name):
            continue
        out["extra"][name] = col(name)
    ignored = [c for c in table if _AU_COL.match(c) and c not in AU_NAMES]
    if ignored:
        log.debug("%s: ignoring AU columns outside AU_NAMES: %s", path, ignored)
    return out


def generic_recordings(root: str | os.PathLike, subjects: Iterable[str] | None = None,
                       subject_map: Mapping[str, str] | None = None,
                       fps: float | None = None) -> Iterator[Recording]:
    """Videos under `root` (or the single video file `root`) with their ``<stem>.csv`` labels, if any.

    Args:
      root: a folder of videos, or one video file.
      subjects: keep only these subjects.
      subject_map: video stem -> subject id (default: ``subjects.csv`` in the folder, else the stem).
      fps: override the containers' frame rates.
    """
    root = Path(root)
    if not root.exists():
        raise file_error(root, "no such file or folder")
    mapping = _subject_map(root, subject_map)
    keep = subject_filter(subjects)
    videos = _generic_videos(root)
    if not videos:
        log.warning("%s: no video files (%s)", root, ", ".join(VIDEO_EXTENSIONS))
    for v in videos:
        subject = mapping.get(v.stem, v.stem)
        if not keep(subject):
            continue
        frames, video_fps = read_video(v, fps=fps)
        csv_path = v.with_suffix(".csv")
        labels: dict = {"extra": {}}
        if csv_path.is_file():
            labels = generic_labels(read_label_csv(csv_path), frames.shape[0], video_fps, csv_path)
        else:
            log.info("%s: no %s; recording without labels", v, csv_path.name)
        yield Recording(name=v.stem, subject=subject, frames=frames, fps=video_fps, source=str(v), **labels)


READER = Reader(generic_recordings, generic_subjects)
