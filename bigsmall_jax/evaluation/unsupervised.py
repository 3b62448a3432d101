"""Unsupervised rPPG: POS, CHROM and GREEN pulse waves from the mean skin colour of each frame.

Each method maps ``rgb_means`` (T, 3) float (the spatial mean R, G, B of the face in every frame, any
units) and the frame rate (Hz) to a (T,) pulse wave in arbitrary units:

- `pos`: Plane-Orthogonal-to-Skin (Wang, den Brinker, Stuijk & de Haan, IEEE TBME 2017): in sliding windows
  of 1.6 s the colours are divided by their temporal mean, projected onto the plane orthogonal to the skin
  tone, the two projections combined with alpha tuning, and the zero-mean window outputs overlap-added.
  Invariant to any global (or per-channel) intensity scale, and to slow illumination changes.
- `chrom`: chrominance (de Haan & Jeanne, IEEE TBME 2013): per window, normalized colours give
  X = 3R - 2G and Y = 1.5R + G - 1.5B, both band-passed; S = X - (std X / std Y) Y, Hann-windowed and
  overlap-added with 50 % overlap.
- `green`: the green channel (Verkruysse et al. 2008), divided by its mean, detrended and band-passed.

`spatial_means` gives the (T, 3) input from frames; `METHODS` maps names to the three functions.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import signal

from bigsmall_jax.errors import UserError

DEFAULT_BAND = (0.7, 3.0)  # Hz: 42-180 beats/min


def spatial_means(frames: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean colour of every frame.

    Args:
      frames: (T, H, W, 3) frames, uint8 or float.
      mask: optional (H, W) or (T, H, W) boolean skin mask; only True pixels are averaged.

    Returns:
      (T, 3) float64 mean R, G, B per frame (in the frames' units).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise UserError(f"spatial_means: frames must be (T, H, W, 3), got {frames.shape}")
    if mask is None:
        if frames.dtype == np.uint8:  # OpenCV's SIMD mean: ~6x faster than numpy's on uint8 video
            return np.array([cv2.mean(np.ascontiguousarray(f))[:3] for f in frames], np.float64).reshape(-1, 3)
        return frames.mean(axis=(1, 2), dtype=np.float64)
    mask = np.broadcast_to(np.asarray(mask, bool), frames.shape[:3])
    counts = mask.sum(axis=(1, 2))
    if np.any(counts == 0):
        raise UserError(f"spatial_means: the mask is empty in frame {int(np.flatnonzero(counts == 0)[0])}")
    sums = np.einsum("thwc,thw->tc", frames.astype(np.float64), mask.astype(np.float64))
    return sums / counts[:, None]


def _check_rgb(rgb_means, fps: float) -> np.ndarray:
    rgb = np.asarray(rgb_means, np.float64)
    if rgb.ndim != 2 or rgb.shape[1] != 3 or rgb.shape[0] < 2:
        raise UserError(f"rgb_means must be (T, 3) with T >= 2, got {rgb.shape}")
    if not np.all(np.isfinite(rgb)):
        raise UserError("rgb_means has NaN/inf values")
    if not (math.isfinite(fps) and fps > 0):
        raise UserError(f"invalid frame rate {fps!r}")
    return rgb


def _band_sos(fps: float, band: tuple[float, float], order: int = 3) -> np.ndarray:
    """Butterworth band-pass (second-order sections), the upper edge kept below Nyquist."""
    nyq = fps / 2.0
    low, high = band
    high = min(high, 0.95 * nyq)
    if not 0 < low < high:
        raise UserError(f"band-pass {band} Hz is not possible at {fps} fps")
    return signal.butter(order, [low / nyq, high / nyq], btype="bandpass", output="sos")


def bandpass(wave: np.ndarray, fps: float, band: tuple[float, float] = DEFAULT_BAND, order: int = 3) -> np.ndarray:
    """Zero-phase Butterworth band-pass of a (T,) wave (sosfiltfilt; padding shortened for short waves)."""
    wave = np.asarray(wave, np.float64)
    sos = _band_sos(fps, band, order)
    padlen = min(3 * (2 * len(sos) + 1), wave.shape[-1] - 1)
    return signal.sosfiltfilt(sos, wave, padlen=padlen)


def _safe_ratio(a: float, b: float) -> float:
    return a / b if b > 1e-12 * max(abs(a), 1.0) else 0.0


def pos(
    rgb_means: np.ndarray, fps: float, window_s: float = 1.6, band: tuple[float, float] | None = None
) -> np.ndarray:
    """POS pulse wave (Wang et al. 2017, Algorithm 1).

    Args:
      rgb_means: (T, 3) mean R, G, B per frame, positive.
      fps: frame rate in Hz.
      window_s: window length in seconds (paper: 1.6 s); windows slide by one frame.
      band: optional band-pass (Hz) applied to the result; None (the paper's algorithm): none.

    Returns:
      (T,) float64 pulse wave, arbitrary units.
    """
    rgb = _check_rgb(rgb_means, fps)
    t = rgb.shape[0]
    win = min(t, max(2, math.ceil(window_s * fps)))
    proj = np.array([[0.0, 1.0, -1.0], [-2.0, 1.0, 1.0]])
    out = np.zeros(t)
    for m in range(t - win + 1):
        c = rgb[m : m + win]
        mean = c.mean(axis=0)
        if np.any(mean <= 0):
            raise UserError(f"rgb_means must be positive (window at frame {m} has mean {mean})")
        s = (c / mean) @ proj.T  # (win, 2)
        h = s[:, 0] + _safe_ratio(s[:, 0].std(), s[:, 1].std()) * s[:, 1]
        out[m : m + win] += h - h.mean()
    return bandpass(out, fps, band) if band is not None else out


def chrom(rgb_means: np.ndarray, fps: float, window_s: float = 1.6,
          band: tuple[float, float] = DEFAULT_BAND) -> np.ndarray:
    """CHROM pulse wave (de Haan & Jeanne 2013), windowed with 50 % overlap-add.

    Args:
      rgb_means: (T, 3) mean R, G, B per frame, positive.
      fps: frame rate in Hz.
      window_s: window length in seconds (rounded up to an even number of frames).
      band: band-pass (Hz) of the chrominance signals X, Y within each window.

    Returns:
      (T,) float64 pulse wave, arbitrary units.
    """
    rgb = _check_rgb(rgb_means, fps)
    t = rgb.shape[0]
    win = max(4, 2 * math.ceil(window_s * fps / 2))
    win = min(win, t - t % 2)
    hop = win // 2
    taper = signal.get_window("hann", win)  # periodic Hann: overlapping halves sum to 1
    sos = _band_sos(fps, band)
    padlen = min(3 * (2 * len(sos) + 1), win - 1)
    out = np.zeros(t)
    starts = list(range(0, t - win + 1, hop))
    for m in starts:
        c = rgb[m : m + win]
        mean = c.mean(axis=0)
        if np.any(mean <= 0):
            raise UserError(f"rgb_means must be positive (window at frame {m} has mean {mean})")
        r, g, b = (c / mean).T
        x = signal.sosfiltfilt(sos, 3.0 * r - 2.0 * g, padlen=padlen)
        y = signal.sosfiltfilt(sos, 1.5 * r + g - 1.5 * b, padlen=padlen)
        s = x - _safe_ratio(x.std(), y.std()) * y
        out[m : m + win] += taper * s
    return out


def green(rgb_means: np.ndarray, fps: float, band: tuple[float, float] | None = DEFAULT_BAND) -> np.ndarray:
    """GREEN pulse wave: green channel / its mean - 1, linearly detrended, band-passed (None: not).

    Args:
      rgb_means: (T, 3) mean R, G, B per frame.
      fps: frame rate in Hz.
      band: band-pass in Hz, or None.

    Returns:
      (T,) float64 pulse wave (relative green intensity; blood volume pulses make it dip).
    """
    rgb = _check_rgb(rgb_means, fps)
    g = rgb[:, 1]
    mean = g.mean()
    g = signal.detrend(g / mean - 1.0 if mean != 0 else g, type="linear")
    return bandpass(g, fps, band) if band is not None else g


def envelope_normalize(wave: np.ndarray, fps: float, smooth_s: float = 0.5) -> np.ndarray:
    """A wave divided by its amplitude envelope (|Hilbert transform|, smoothed over `smooth_s` seconds).

    Makes beat amplitudes uniform, as for BP4D+'s ``pos_env_norm_bvp`` pseudo labels.
    """
    wave = np.asarray(wave, np.float64)
    env = np.abs(signal.hilbert(wave - wave.mean()))
    k = max(1, int(round(smooth_s * fps)))
    env = np.convolve(env, np.ones(k) / k, mode="same")
    floor = 1e-9 * max(float(env.max()), 1e-30)
    return (wave - wave.mean()) / np.maximum(env, floor)


METHODS = {"pos": pos, "chrom": chrom, "green": green}
