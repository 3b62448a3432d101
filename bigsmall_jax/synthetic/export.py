"""Writing a synthetic recording to files: ``<name>.mp4`` (lossless H.264) + ``<name>.csv`` (per-frame labels)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from bigsmall_jax.datasets.recording import AU_NAMES, Recording
from bigsmall_jax.datasets.video_io import write_video
from bigsmall_jax.errors import file_error
from bigsmall_jax.files import write_text_atomic

CSV_COLUMNS = ("frame", "time_s", "bvp", "resp", "hr_bpm", "rr_bpm", *AU_NAMES)
FACE_BOX_COLUMNS = ("face_x", "face_y", "face_w", "face_h")


def _column(x: np.ndarray | None, t: int) -> np.ndarray:
    """(T,) float64 labels, all NaN (written as ``nan``) when the recording has none."""
    return np.full(t, np.nan) if x is None else np.asarray(x, np.float64)


def label_table(rec: Recording) -> list[list]:
    """The rows of a recording's label CSV (without the header `CSV_COLUMNS` + face box columns)."""
    t = rec.num_frames
    box = rec.face_box if rec.face_box is not None else ("", "", "", "")
    bvp, resp, hr, rr = (_column(x, t) for x in (rec.bvp, rec.resp, rec.hr_bpm, rec.rr_bpm))
    au = np.full((t, len(AU_NAMES)), np.nan) if rec.au is None else np.asarray(rec.au)
    rows = []
    for i in range(t):
        rows.append([i, f"{i / rec.fps:.4f}", f"{bvp[i]:.6f}", f"{resp[i]:.6f}", f"{hr[i]:.3f}", f"{rr[i]:.3f}",
                     *("" if np.isnan(x) else int(x) for x in au[i]), *box])
    return rows


def write_files(rec: Recording, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Writes ``<name>.mp4`` (lossless H.264) and ``<name>.csv`` into `out_dir`, each atomically.

    The CSV has one row per frame with columns ``frame,time_s,bvp,resp,hr_bpm,rr_bpm,AU01..AU24`` and
    ``face_x,face_y,face_w,face_h`` (the constant face box), the layout `bigsmall_jax.datasets`'s
    "generic" reader reads back.

    Returns:
      (mp4 path, csv path).
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise file_error(out, f"cannot create the output folder ({e.strerror})") from None
    mp4, csv_path = out / f"{rec.name}.mp4", out / f"{rec.name}.csv"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *FACE_BOX_COLUMNS])
    writer.writerows(label_table(rec))
    write_video(mp4, rec.frames, rec.fps, lossless=True)
    write_text_atomic(csv_path, buf.getvalue())
    return mp4, csv_path
