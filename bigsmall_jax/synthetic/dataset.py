"""A whole synthetic dataset folder: every video's mp4 + CSV, the subject and split lists, a contact sheet
and a label plot (what ``python -m bigsmall_jax.synthetic --out DIR`` writes)."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bigsmall_jax.datasets.recording import Recording
from bigsmall_jax.errors import file_error
from bigsmall_jax.files import write_text_atomic
from bigsmall_jax.synthetic.config import SyntheticConfig
from bigsmall_jax.synthetic.export import write_files
from bigsmall_jax.synthetic.plots import save_contact_sheet, save_label_plot, thin_recording
from bigsmall_jax.synthetic.recordings import iter_recordings, subject_splits

log = logging.getLogger(__name__)


def write_dataset(config: SyntheticConfig, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Writes every video + label CSV of `config`, ``subjects.csv``, ``splits.csv``, ``contact_sheet.png``
    (first video of up to 12 subjects) and ``labels.png`` (the first video) into `out_dir`.

    Returns:
      A summary: out, videos, frames, render_frames_per_s, splits and config (as a dict).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise file_error(out, "exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    n = config.n_subjects * config.videos_per_subject
    sheet_recs: list[Recording] = []
    names: list[tuple[str, str]] = []
    frames = 0
    t0 = time.perf_counter()
    render_s = 0.0
    for rec, dt in tqdm(_timed(iter_recordings(config)), total=n, desc="synthetic videos", unit="video"):
        render_s += dt
        write_files(rec, out)
        names.append((rec.name, rec.subject))
        frames += rec.num_frames
        if len(sheet_recs) < 12 and rec.name.endswith("_V0"):
            sheet_recs.append(thin_recording(rec, 5))
        if len(names) == 1:
            save_label_plot(rec, out / "labels.png")
    write_text_atomic(out / "subjects.csv", "name,subject\n" + "".join(f"{a},{b}\n" for a, b in names))
    splits = subject_splits(config)
    write_text_atomic(out / "splits.csv", "subject,split\n" + "".join(
        f"{s},{k}\n" for k, subs in splits.items() for s in subs))
    save_contact_sheet(sheet_recs, out / "contact_sheet.png", frames_per_video=5)
    wall = time.perf_counter() - t0
    log.info("rendered %d frames in %.1f s (%.0f frames/s); %.1f s in all with file writing",
             frames, render_s, frames / max(render_s, 1e-9), wall)
    return {"out": str(out), "videos": len(names), "frames": frames,
            "render_frames_per_s": round(frames / max(render_s, 1e-9), 1),
            "splits": splits, "config": dataclasses.asdict(config)}


def _timed(it: Iterator[Recording]) -> Iterator[tuple[Recording, float]]:
    """Yields (item, seconds spent producing it) for each item of `it`."""
    while True:
        t = time.perf_counter()
        try:
            rec = next(it)
        except StopIteration:
            return
        yield rec, time.perf_counter() - t
