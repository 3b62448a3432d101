"""Test waves of the evaluation tests: sinusoids at known rates, diff-normalized like the labels."""

from __future__ import annotations

import numpy as np


def sinusoid(rate_per_min: float, fs: float, seconds: float, phase: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(fs * seconds))) / fs
    return np.sin(2 * np.pi * rate_per_min / 60.0 * t + phase)


def diff_normalize(wave: np.ndarray) -> np.ndarray:
    """Label diff-normalization of the reference recipe: np.diff, / std, a 0 appended."""
    d = np.diff(wave)
    return np.append(d / np.std(d), 0.0)


def fft_bin_per_min(num_samples: int, fs: float) -> float:
    nfft = 1 << (num_samples - 1).bit_length()
    return 60.0 * fs / nfft


def video_entry(vid, fs, hr_pred, hr_label, rr_pred, rr_label, seconds=40.0, au=True):
    """A per-video dict as `metrics.evaluate_videos` reads it: sinusoidal waves at the given rates (per minute)
    and, with `au`, (T, 12) AU labels and logits that are right on every labeled frame."""
    v = {
        "video_id": vid, "fps": fs,
        "bvp_pred": diff_normalize(sinusoid(hr_pred, fs, seconds)),
        "bvp_label": diff_normalize(sinusoid(hr_label, fs, seconds, phase=1.0)),
        "resp_pred": diff_normalize(sinusoid(rr_pred, fs, seconds))[:, None],  # (T, 1) like the model
        "resp_label": diff_normalize(sinusoid(rr_label, fs, seconds, phase=2.0)),
    }
    if au:
        n = v["bvp_pred"].shape[0]
        labels = np.zeros((n, 12))
        labels[: n // 2, 0] = 1.0
        labels[n // 3 :, 5] = 1.0
        labels[:10, 7] = np.nan
        v["au_label"] = labels
        v["au_logits"] = np.where(labels == 1.0, 3.0, -3.0)  # perfect on labeled frames
    return v
