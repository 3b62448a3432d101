"""Figures of synthetic recordings: a contact sheet of frames and a plot of one recording's labels."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from bigsmall_jax.datasets.recording import AU_NAMES, Recording
from bigsmall_jax.errors import UserError
from bigsmall_jax.figures import new_figure, save_png


def save_contact_sheet(recs: Sequence[Recording], path_png: str | os.PathLike, frames_per_video: int = 5,
                       max_videos: int = 12) -> Path:
    """A PNG grid: one row per recording (up to `max_videos`), `frames_per_video` frames evenly spaced,
    each titled with its time and active AUs, the face box drawn on the first."""
    recs = list(recs)[:max_videos]
    if not recs:
        raise UserError("save_contact_sheet: no recordings")
    cols = frames_per_video
    fig = new_figure(1.6 * cols, 1.75 * len(recs))
    axes = fig.subplots(len(recs), cols, squeeze=False)
    for r, rec in enumerate(recs):
        idx = np.linspace(0, rec.num_frames - 1, cols).round().astype(int)
        for c, i in enumerate(idx):
            ax = axes[r, c]
            frame = rec.frames[i]
            if c == 0 and rec.face_box is not None:
                frame = frame.copy()
                x, y, w, h = rec.face_box
                cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), (0, 255, 0), 1)
            ax.imshow(frame, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            active = [n[2:] for n, on in zip(AU_NAMES, rec.au[i], strict=True) if on == 1] if rec.au is not None else []
            ax.set_title(f"{rec.name} {i / rec.fps:.1f}s\nAU " + (",".join(active) or "-"), fontsize=6)
    return save_png(fig, path_png)


def save_label_plot(rec: Recording, path_png: str | os.PathLike, seconds: float = 12.0) -> Path:
    """A PNG of a recording's labels: pulse with the skin's mean green, respiration, rates and the AU raster."""
    t = np.arange(rec.num_frames) / rec.fps
    show = t <= seconds
    fig = new_figure(9.0, 9.0)
    ax = fig.subplots(4, 1, height_ratios=[1, 1, 0.8, 1.3])
    if rec.bvp is not None:
        ax[0].plot(t[show], _unit(rec.bvp)[show], lw=1.0, label="bvp (PPG label)")
        if rec.face_box is not None:
            x, y, w, h = rec.face_box
            green = rec.frames[:, y:y + h, x:x + w, 1].reshape(rec.num_frames, -1).mean(1)
            ax[0].plot(t[show], -_unit(_detrend(green, rec.fps))[show], lw=1.0, alpha=0.8,
                       label="-(face-box mean green), detrended")
        ax[0].legend(fontsize=7, loc="upper right")
    ax[0].set_title(f"{rec.name}: pulse (first {seconds:g} s)", fontsize=9)
    if rec.resp is not None:
        ax[1].plot(t, rec.resp, lw=1.0, color="tab:green")
    ax[1].set_title("respiration (up = inhale)", fontsize=9)
    if rec.hr_bpm is not None:
        ax[2].plot(t, rec.hr_bpm, label="HR (beats/min)", color="tab:red")
    if rec.rr_bpm is not None:
        ax[2].plot(t, rec.rr_bpm, label="RR (breaths/min)", color="tab:green")
    ax[2].legend(fontsize=7, loc="center right")
    ax[2].set_title("instantaneous rates", fontsize=9)
    if rec.au is not None:
        ax[3].imshow(np.asarray(rec.au).T, aspect="auto", interpolation="nearest", cmap="Greys",
                     extent=(0, t[-1] if len(t) else 1, len(AU_NAMES) - 0.5, -0.5), vmin=0, vmax=1)
        ax[3].set_yticks(range(len(AU_NAMES)), AU_NAMES, fontsize=7)
        ax[3].set_title("AU labels (black = on)", fontsize=9)
    ax[3].set_xlabel("time (s)")
    return save_png(fig, path_png)


def _unit(x: np.ndarray) -> np.ndarray:
    """x standardised to zero mean and unit standard deviation (only centred when constant)."""
    x = np.asarray(x, np.float64)
    s = x.std()
    return (x - x.mean()) / s if s > 0 else x - x.mean()


def _detrend(x: np.ndarray, fps: float, window_s: float = 1.5) -> np.ndarray:
    """x minus its moving average over `window_s` (removes light drift and respiration, keeps the pulse)."""
    k = max(1, int(round(window_s * fps)))
    pad = np.pad(np.asarray(x, np.float64), (k // 2, k - 1 - k // 2), mode="edge")
    return x - np.convolve(pad, np.ones(k) / k, mode="valid")


def thin_recording(rec: Recording, k: int) -> Recording:
    """The recording with only `k` evenly spaced frames kept (for the contact sheet; AU labels kept aligned,
    the other labels dropped, fps lowered to match)."""
    idx = np.linspace(0, rec.num_frames - 1, k).round().astype(int)
    fps = rec.fps * (k - 1) / max(rec.num_frames - 1, 1) if k > 1 else rec.fps
    return dataclasses.replace(rec, frames=rec.frames[idx], au=None if rec.au is None else rec.au[idx], fps=fps,
                               bvp=None, resp=None, hr_bpm=None, rr_bpm=None)


def save_style_sheet(rows: Sequence[tuple[str, Sequence[np.ndarray], Sequence[np.ndarray]]],
                     path_png: str | os.PathLike, left: str = "classic", right: str = "physical") -> Path:
    """A PNG comparing two looks of the same subjects: one row per (title, left frames, right frames),
    frames (H, W, 3) uint8, the left group's column titles `left`, the right group's `right`."""
    if not rows:
        raise UserError("save_style_sheet: no rows")
    n_left, n_right = len(rows[0][1]), len(rows[0][2])
    cols = n_left + n_right
    fig = new_figure(1.1 * cols, 1.15 * len(rows))
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (title, a, b) in enumerate(rows):
        for c, frame in enumerate([*a, *b]):
            ax = axes[r, c]
            ax.imshow(frame, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(left if c < n_left else right, fontsize=8)
            if c == 0:
                ax.set_ylabel(title, fontsize=7)
    return save_png(fig, path_png)
