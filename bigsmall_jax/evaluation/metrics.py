"""Evaluation metrics of the BigSmall paper: heart rate, respiration rate and action units.

Rates follow the paper's protocol (the rPPG-Toolbox recipe):

1. a diff-normalized wave (what the model predicts, and the diff-normalized label) is integrated back
   with a cumulative sum;
2. smoothness-priors detrending (Tarvainen et al. 2002, lambda = 100);
3. a Butterworth order-1 band-pass applied forwards and backwards (`scipy.signal.filtfilt`):
   0.75-2.5 Hz for heart rate (HR), 0.13-0.5 Hz for respiration rate (RR);
4. the rate: the peak of the periodogram inside the band (``method="fft"``) or the mean interval
   between peaks (``method="peak"``), in beats or breaths per minute.

Label rates are computed from the label waves with exactly the same procedure. Errors over a set of
videos (or fixed windows) are the MAE, RMSE, MAPE and Pearson correlation of predicted against label
rates, each with its standard error; the SNR of a predicted pulse is measured around the label's rate.
AUs are scored frame by frame (sigmoid, threshold 0.5) with per-AU F1, precision, recall and accuracy.

All waves are 1-D numpy arrays of shape (T,) sampled at ``fs`` Hz; all rates are per minute.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.linalg
import scipy.signal
import scipy.special
from tqdm import tqdm

from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.errors import UserError

logger = logging.getLogger(__name__)

# Pass bands in Hz of the paper's protocol.
BANDS: dict[str, tuple[float, float]] = {"hr": (0.75, 2.5), "rr": (0.13, 0.5)}
DETREND_LAMBDA = 100.0
FILTER_ORDER = 1
# Half width of the SNR's signal windows around the label's first and second harmonics, per minute.
SNR_DEVIATION_PER_MIN = 6.0


# --------------------------------------------------------------------------------------------------
# Signal processing
# --------------------------------------------------------------------------------------------------


def _as_wave(signal, name: str = "wave") -> np.ndarray:
    """A (T,) float64 copy of ``signal``; a trailing singleton axis ((T, 1) model output) is dropped."""
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise UserError(f"{name}: expected a 1-D wave of shape (T,), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise UserError(f"{name}: contains NaN or infinite values")
    return x


def band_for(kind: str) -> tuple[float, float]:
    """The pass band (low_hz, high_hz) of ``kind`` (``"hr"`` or ``"rr"``)."""
    if kind not in BANDS:
        raise UserError(f"unknown rate kind {kind!r}; expected one of {sorted(BANDS)}")
    return BANDS[kind]


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def min_wave_length(order: int = FILTER_ORDER) -> int:
    """Fewest samples `bandpass` (filtfilt with its default padding) accepts for a filter of ``order``."""
    return 3 * (2 * order + 1) + 1


def detrend_dense(signal, lam: float = DETREND_LAMBDA) -> np.ndarray:
    """Smoothness-priors detrending with a dense N x N inverse, as originally written (O(N^3) time).

    Reference implementation for tests; use `detrend`.

    Args:
      signal: (N,) wave.
      lam: smoothing parameter lambda (the system uses lambda^2).

    Returns:
      (N,) float64 ``x - inv(I + lam^2 D2^T D2) x`` with D2 the (N-2, N) second-difference matrix.
    """
    x = np.asarray(signal, dtype=np.float64)
    n = x.shape[0]
    d2 = np.diff(np.eye(n), n=2, axis=0)  # (N-2, N), rows [1, -2, 1]
    eye = np.eye(n)
    return (eye - np.linalg.inv(eye + lam**2 * d2.T @ d2)) @ x


def detrend(signal, lam: float = DETREND_LAMBDA) -> np.ndarray:
    """Smoothness-priors detrending (Tarvainen et al. 2002) in linear time.

    Solves the symmetric positive-definite pentadiagonal system ``(I + lam^2 D2^T D2) z = x`` with a
    banded Cholesky solver and returns ``x - z``: the same result as `detrend_dense` (to rounding),
    in O(N) time and memory instead of O(N^3) and O(N^2).

    Args:
      signal: (N,) wave.
      lam: smoothing parameter lambda; larger removes less (the trend is smoother).

    Returns:
      (N,) float64 detrended wave. Waves shorter than 3 samples have no second difference, so the
      trend is the wave itself and the result is zeros.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"detrend expects a 1-D signal, got shape {x.shape}")
    n = x.shape[0]
    if n < 3:
        return np.zeros_like(x)
    lam2 = float(lam) ** 2
    # Bands of D2^T D2, accumulated row by row of D2 ([1, -2, 1] at columns i, i+1, i+2).
    diag = np.zeros(n)
    diag[: n - 2] += 1.0
    diag[1 : n - 1] += 4.0
    diag[2:] += 1.0
    off1 = np.zeros(n - 1)
    off1[: n - 2] -= 2.0
    off1[1:] -= 2.0
    # Upper banded storage for solveh_banded: ab[u + i - j, j] = A[i, j], u = 2.
    ab = np.zeros((3, n))
    ab[2] = 1.0 + lam2 * diag
    ab[1, 1:] = lam2 * off1
    ab[0, 2:] = lam2  # the second off-diagonal of D2^T D2 is all ones
    trend = scipy.linalg.solveh_banded(ab, x, lower=False, check_finite=False)
    return x - trend


def bandpass(signal, fs: float, low_hz: float, high_hz: float, order: int = FILTER_ORDER) -> np.ndarray:
    """Zero-phase Butterworth band-pass: `scipy.signal.butter` + `scipy.signal.filtfilt`.

    Args:
      signal: (N,) wave with N >= `min_wave_length` (order).
      fs: sampling rate in Hz.
      low_hz, high_hz: pass band in Hz, 0 < low_hz < high_hz < fs / 2.
      order: Butterworth order (the paper uses 1).

    Returns:
      (N,) float64 filtered wave.
    """
    x = np.asarray(signal, dtype=np.float64)
    if not 0 < low_hz < high_hz < fs / 2:
        raise UserError(f"band {low_hz}-{high_hz} Hz does not fit under the Nyquist frequency of fs={fs} Hz")
    need = min_wave_length(order)
    if x.shape[0] < need:
        raise UserError(f"wave has {x.shape[0]} samples; band-pass filtering needs at least {need}")
    b, a = scipy.signal.butter(order, [low_hz / (fs / 2), high_hz / (fs / 2)], btype="bandpass")
    return scipy.signal.filtfilt(b, a, x)


def periodogram(signal, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """`scipy.signal.periodogram` with nfft = next power of 2 of len and no detrending.

    Returns:
      freqs (nfft // 2 + 1,) in Hz and power spectral density (same shape).
    """
    x = np.asarray(signal, dtype=np.float64)
    nfft = next_power_of_2(x.shape[0])
    return scipy.signal.periodogram(x, fs=fs, nfft=nfft, detrend=False)


def rate_fft(signal, fs: float, low_hz: float, high_hz: float) -> float:
    """Rate per minute: 60 x the frequency of the periodogram's peak inside [low_hz, high_hz].

    The resolution is one FFT bin, 60 * fs / nfft per minute, nfft = next power of 2 of len(signal).
    """
    freqs, pxx = periodogram(signal, fs)
    in_band = (freqs >= low_hz) & (freqs <= high_hz)
    if not np.any(in_band):
        n = np.shape(signal)[0]
        raise UserError(f"wave of {n} samples has no frequency bin in {low_hz}-{high_hz} Hz")
    band_freqs = freqs[in_band]
    return float(band_freqs[np.argmax(pxx[in_band])] * 60.0)


def rate_peaks(signal, fs: float) -> float:
    """Rate per minute: 60 / mean interval (s) between the peaks of `scipy.signal.find_peaks`.

    Returns NaN when fewer than two peaks are found.
    """
    peaks, _ = scipy.signal.find_peaks(np.asarray(signal, dtype=np.float64))
    if peaks.shape[0] < 2:
        return float("nan")
    return float(60.0 / (np.mean(np.diff(peaks)) / fs))


def process_wave(wave, fs: float, kind: str = "hr", diff_normalized: bool = True) -> np.ndarray:
    """The protocol's conditioning before a rate is read: [cumsum], detrend (lambda 100), band-pass.

    Args:
      wave: (T,) predicted or label wave; (T, 1) is accepted.
      fs: sampling rate in Hz.
      kind: ``"hr"`` (0.75-2.5 Hz) or ``"rr"`` (0.13-0.5 Hz).
      diff_normalized: the wave is a diff-normalized signal (first differences); integrate it first.

    Returns:
      (T,) float64 band-passed wave.
    """
    low, high = band_for(kind)
    x = _as_wave(wave)
    if diff_normalized:
        x = np.cumsum(x)
    x = detrend(x, DETREND_LAMBDA)
    return bandpass(x, fs, low, high, FILTER_ORDER)


def wave_to_rate(
    wave, fs: float, kind: str = "hr", diff_normalized: bool = True, method: str = "fft"
) -> float:
    """Heart rate (beats/min) or respiration rate (breaths/min) of a wave, by the paper's protocol.

    Args:
      wave: (T,) wave sampled at ``fs`` Hz.
      fs: sampling rate in Hz.
      kind: ``"hr"`` or ``"rr"``.
      diff_normalized: integrate (cumsum) first, for diff-normalized waves.
      method: ``"fft"`` (periodogram peak in the band) or ``"peak"`` (mean peak interval; NaN if
        fewer than two peaks).

    Returns:
      The rate per minute.
    """
    low, high = band_for(kind)
    x = process_wave(wave, fs, kind, diff_normalized)
    if method == "fft":
        return rate_fft(x, fs, low, high)
    if method == "peak":
        return rate_peaks(x, fs)
    raise UserError(f"unknown rate method {method!r}; expected 'fft' or 'peak'")


def snr_db(
    pred_wave,
    label_rate_per_min: float,
    fs: float,
    kind: str = "hr",
    diff_normalized: bool = True,
    process: bool = True,
) -> float:
    """Signal-to-noise ratio of a predicted wave around the label's rate, in dB.

    Signal: periodogram power within +-6 per minute of the label rate's first and second harmonics.
    Noise: the power in the rest of the kind's band. Returns ``10 log10(signal / noise)`` — the dB of a
    power ratio. (Older rPPG-Toolbox code applied ``20 log10``, i.e. numbers twice ours, to the same
    ratio.) NaN when the noise power is zero.

    Args:
      pred_wave: (T,) predicted wave.
      label_rate_per_min: the label's rate (from `wave_to_rate` on the label wave).
      fs: sampling rate in Hz.
      kind: ``"hr"`` or ``"rr"`` (selects the band).
      diff_normalized: passed to `process_wave`.
      process: condition the wave with `process_wave` first (the protocol); False if already done.
    """
    low, high = band_for(kind)
    x = process_wave(pred_wave, fs, kind, diff_normalized) if process else _as_wave(pred_wave)
    freqs, pxx = periodogram(x, fs)
    f1 = label_rate_per_min / 60.0
    dev = SNR_DEVIATION_PER_MIN / 60.0
    harm1 = (freqs >= f1 - dev) & (freqs <= f1 + dev)
    harm2 = (freqs >= 2 * f1 - dev) & (freqs <= 2 * f1 + dev)
    rest = (freqs >= low) & (freqs <= high) & ~harm1 & ~harm2
    signal_power = float(np.sum(pxx[harm1]) + np.sum(pxx[harm2]))
    noise_power = float(np.sum(pxx[rest]))
    if noise_power <= 0.0 or signal_power <= 0.0:
        return float("nan")
    return float(10.0 * np.log10(signal_power / noise_power))


# --------------------------------------------------------------------------------------------------
# Rates over videos and windows
# --------------------------------------------------------------------------------------------------


def window_slices(num_samples: int, fs: float, window_s: float | None) -> list[slice]:
    """Non-overlapping windows of ``window_s`` seconds over a wave of ``num_samples`` samples.

    ``window_s=None`` is the whole wave (per-video evaluation, the paper's setting). A trailing
    remainder shorter than a full window is dropped, except that a wave shorter than one window is
    scored as a single window.
    """
    if window_s is None:
        return [slice(0, num_samples)]
    if window_s <= 0:
        raise UserError(f"window_s must be positive, got {window_s}")
    size = int(round(window_s * fs))
    if size >= num_samples or size < 1:
        return [slice(0, num_samples)]
    return [slice(start, start + size) for start in range(0, num_samples - size + 1, size)]


def windowed_rates(
    pred,
    label,
    fs: float,
    kind: str = "hr",
    window_s: float | None = None,
    diff_normalized: bool = True,
    method: str = "fft",
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and label rates per window (see `window_slices`) of one video.

    Args:
      pred, label: (T,) predicted and label waves of the same length, sampled at ``fs`` Hz.
      kind, diff_normalized, method: as in `wave_to_rate`.
      window_s: window length in seconds, or None for the whole video.

    Returns:
      (pred_rates, label_rates), each (num_windows,) float64, per minute.
    """
    p = _as_wave(pred, "prediction")
    y = _as_wave(label, "label")
    if p.shape != y.shape:
        raise UserError(f"prediction has {p.shape[0]} samples but label has {y.shape[0]}")
    slices = window_slices(p.shape[0], fs, window_s)
    pred_rates = [wave_to_rate(p[s], fs, kind, diff_normalized, method) for s in slices]
    label_rates = [wave_to_rate(y[s], fs, kind, diff_normalized, method) for s in slices]
    return np.asarray(pred_rates, dtype=np.float64), np.asarray(label_rates, dtype=np.float64)


def rate_errors(pred_rates, label_rates) -> dict[str, float]:
    """Errors of predicted against label rates, each with its standard error.

    Pairs where either rate is NaN (e.g. `rate_peaks` found < 2 peaks) are left out; ``n`` counts
    the pairs used. Standard errors use the population std (ddof=0), as the published evaluation
    does: ``mae_se = std|e| / sqrt(n)``, ``mape_se`` likewise on the percentage errors,
    ``rmse_se = std(e^2) / (sqrt(n) * 2 rmse)`` (delta method), ``pearson_se = sqrt((1 - r^2)/(n - 2))``.
    Undefined values (Pearson with n < 3 or constant rates) are NaN.

    Args:
      pred_rates, label_rates: (N,) rates per minute.

    Returns:
      dict with ``n, mae, mae_se, rmse, rmse_se, mape, mape_se, pearson, pearson_se, mean_error``
      (``mean_error`` = mean of pred - label, the Bland-Altman bias); MAPE in percent.
    """
    p = np.asarray(pred_rates, dtype=np.float64).ravel()
    y = np.asarray(label_rates, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise UserError(f"{p.shape[0]} predicted rates but {y.shape[0]} label rates")
    keep = np.isfinite(p) & np.isfinite(y)
    p, y = p[keep], y[keep]
    n = int(p.shape[0])
    nan = float("nan")
    out = dict(n=n, mae=nan, mae_se=nan, rmse=nan, rmse_se=nan, mape=nan, mape_se=nan,
               pearson=nan, pearson_se=nan, mean_error=nan)
    if n == 0:
        return out
    err = p - y
    abs_err = np.abs(err)
    sq_err = err**2
    root_n = math.sqrt(n)
    out["mean_error"] = float(np.mean(err))
    out["mae"] = float(np.mean(abs_err))
    out["mae_se"] = float(np.std(abs_err) / root_n)
    rmse = float(np.sqrt(np.mean(sq_err)))
    out["rmse"] = rmse
    out["rmse_se"] = float(np.std(sq_err) / (root_n * 2.0 * rmse)) if rmse > 0 else 0.0
    nonzero = y != 0
    if np.any(nonzero):
        pct = abs_err[nonzero] / np.abs(y[nonzero]) * 100.0
        out["mape"] = float(np.mean(pct))
        out["mape_se"] = float(np.std(pct) / math.sqrt(pct.shape[0]))
    if n >= 3 and np.std(p) > 0 and np.std(y) > 0:
        r = float(np.corrcoef(p, y)[0, 1])
        out["pearson"] = r
        out["pearson_se"] = float(math.sqrt(max(0.0, 1.0 - r * r) / (n - 2)))
    return out


# --------------------------------------------------------------------------------------------------
# Action units
# --------------------------------------------------------------------------------------------------


def au_metrics(logits_or_probs, labels, threshold: float = 0.5, from_logits: bool = True) -> dict:
    """Frame-level AU detection scores, per AU and averaged.

    A frame is predicted positive for an AU when its probability (the sigmoid of the logit when
    ``from_logits``) is >= ``threshold``. Frames whose label is NaN are left out for that AU only.
    Zero-division convention (sklearn's ``zero_division=0``): precision is 0 when nothing is predicted
    positive, recall is 0 when nothing is labeled positive, F1 is 0 when both are 0 (no true
    positives). An AU with no labeled frames at all gets NaN everywhere and is left out of the means.

    Args:
      logits_or_probs: (..., A) logits or probabilities (A = 12 for the paper).
      labels: (..., A) in {0, 1}, NaN where missing.
      threshold: probability threshold.
      from_logits: apply a sigmoid first.

    Returns:
      dict with ``f1, precision, recall, accuracy`` ((A,) float64 arrays in [0, 1]), their means over
      AUs ``f1_mean, precision_mean, recall_mean, accuracy_mean``, and per-AU counts ``support``
      (labeled positives) and ``num_labeled`` ((A,) int64).
    """
    scores = np.asarray(logits_or_probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if scores.shape != y.shape or scores.ndim < 1:
        raise UserError(f"AU predictions have shape {scores.shape} but labels have shape {y.shape}")
    num_au = scores.shape[-1]
    scores = scores.reshape(-1, num_au)
    y = y.reshape(-1, num_au)
    if not np.all(np.isfinite(scores)):
        raise UserError("AU predictions contain NaN or infinite values")
    labeled = ~np.isnan(y)
    if not np.all(np.isin(y[labeled], (0.0, 1.0))):
        raise UserError("AU labels must be 0, 1 or NaN (missing)")
    probs = scipy.special.expit(scores) if from_logits else scores
    pred = probs >= threshold
    pos = (y == 1.0) & labeled
    neg = (y == 0.0) & labeled
    tp = np.sum(pred & pos, axis=0).astype(np.float64)
    fp = np.sum(pred & neg, axis=0).astype(np.float64)
    fn = np.sum(~pred & pos, axis=0).astype(np.float64)
    tn = np.sum(~pred & neg, axis=0).astype(np.float64)
    num_labeled = labeled.sum(axis=0)

    def ratio(num, den):
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    precision = ratio(tp, tp + fp)
    recall = ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    accuracy = ratio(tp + tn, num_labeled.astype(np.float64))
    empty = num_labeled == 0
    out: dict = {}
    for key, value in (("f1", f1), ("precision", precision), ("recall", recall), ("accuracy", accuracy)):
        value = np.where(empty, np.nan, value)
        out[key] = value
        out[f"{key}_mean"] = float(np.mean(value[~empty])) if np.any(~empty) else float("nan")
    out["support"] = pos.sum(axis=0).astype(np.int64)
    out["num_labeled"] = num_labeled.astype(np.int64)
    return out


# --------------------------------------------------------------------------------------------------
# Whole test sets
# --------------------------------------------------------------------------------------------------

_RATE_TASKS = (("hr", "bvp"), ("rr", "resp"))


def _json_float(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _jsonify(obj):
    """Numpy scalars/arrays -> floats/ints/lists; NaN and inf -> None (strict JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonify(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return [_jsonify(v) for v in obj.tolist()]
    if isinstance(obj, list | tuple):
        return [_jsonify(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _json_float(obj)
    return obj


def _score_rates(video: Mapping, kind: str, prefix: str, fs: float, window_s, diff_normalized, method):
    """Per-window predicted/label rates and SNRs of one video for one task, or None if no prediction."""
    pred = video.get(f"{prefix}_pred")
    if pred is None:
        return None
    p = _as_wave(pred, f"{prefix}_pred")
    label = video.get(f"{prefix}_label")
    y = None if label is None else _as_wave(label, f"{prefix}_label")
    if y is not None and y.shape != p.shape:
        raise UserError(f"{prefix}_pred has {p.shape[0]} samples but {prefix}_label has {y.shape[0]}")
    pred_rates, label_rates, snrs = [], [], []
    for s in window_slices(p.shape[0], fs, window_s):
        p_proc = process_wave(p[s], fs, kind, diff_normalized)
        low, high = BANDS[kind]
        pred_rates.append(rate_fft(p_proc, fs, low, high) if method == "fft" else rate_peaks(p_proc, fs))
        if y is not None:
            y_rate = wave_to_rate(y[s], fs, kind, diff_normalized, method)
            label_rates.append(y_rate)
            snrs.append(snr_db(p_proc, y_rate, fs, kind, process=False) if math.isfinite(y_rate) else np.nan)
    return np.asarray(pred_rates), (None if y is None else np.asarray(label_rates)), np.asarray(snrs)


def evaluate_videos(
    videos: Sequence[Mapping],
    fs_key: str = "fps",
    window_s: float | None = None,
    method: str = "fft",
    diff_normalized: bool = True,
    au_threshold: float = 0.5,
) -> dict:
    """Scores a test set the paper's way: rates per video (or window), AUs over all frames.

    Args:
      videos: one dict per video with ``video_id``, the sampling rate under ``fs_key`` and any of
        ``bvp_pred``/``bvp_label`` ((T,) pulse waves -> HR), ``resp_pred``/``resp_label`` ((T,)
        respiration waves -> RR), ``au_logits``/``au_label`` ((T, 12) logits and {0, 1, NaN} labels).
        A prediction without its label is still given a rate in ``per_video`` but not scored.
      fs_key: key of the sampling rate (Hz) in each dict.
      window_s: None for one rate per video (the paper), else non-overlapping windows of this many
        seconds (see `window_slices`).
      method: ``"fft"`` or ``"peak"``.
      diff_normalized: the waves are diff-normalized (integrate before detrending).
      au_threshold: probability threshold for AUs.

    Returns:
      JSON-serialisable dict (floats, ints, lists; NaN written as None): for ``t`` in ``hr, rr``:
      ``t_mae, t_mae_se, t_rmse, t_rmse_se, t_mape, t_mape_se, t_pearson, t_pearson_se,
      t_mean_error, t_n`` (scored windows), ``t_snr, t_snr_se`` (mean SNR in dB and its standard
      error); ``au_f1_mean, au_precision_mean, au_recall_mean, au_accuracy_mean`` and ``au_f1``,
      ``au_precision``, ``au_recall``, ``au_accuracy`` (dicts by AU name); ``num_videos``,
      ``window_s``, ``method``; and ``per_video``: a list of dicts with ``video_id``, ``fps``,
      ``num_frames`` and ``hr_pred, hr_label, hr_snr`` (floats per video, or lists per window), the
      same for ``rr``, and ``au_f1_mean``.
    """
    if method not in ("fft", "peak"):
        raise UserError(f"unknown rate method {method!r}; expected 'fft' or 'peak'")
    all_rates = {kind: ([], [], []) for kind, _ in _RATE_TASKS}
    au_scores, au_labels = [], []
    per_video = []
    for i, video in enumerate(tqdm(videos, desc="scoring videos", leave=False, disable=None)):
        vid = str(video.get("video_id", f"#{i}"))
        try:
            if fs_key not in video:
                raise UserError(f"no sampling rate {fs_key!r}")
            fs = float(video[fs_key])
            if not (math.isfinite(fs) and fs > 0):
                raise UserError(f"sampling rate {fs_key}={video[fs_key]!r} is not a positive number")
            entry: dict = {"video_id": vid, "fps": fs}
            lengths = []
            for kind, prefix in _RATE_TASKS:
                scored = _score_rates(video, kind, prefix, fs, window_s, diff_normalized, method)
                if scored is None:
                    continue
                pred_rates, label_rates, snrs = scored
                lengths.append(np.shape(np.asarray(video[f"{prefix}_pred"]))[0])
                one = window_s is None
                entry[f"{kind}_pred"] = pred_rates[0] if one else pred_rates
                if label_rates is not None:
                    entry[f"{kind}_label"] = label_rates[0] if one else label_rates
                    entry[f"{kind}_snr"] = snrs[0] if one else snrs
                    all_rates[kind][0].append(pred_rates)
                    all_rates[kind][1].append(label_rates)
                    all_rates[kind][2].append(snrs)
            if video.get("au_logits") is not None and video.get("au_label") is not None:
                scores = np.asarray(video["au_logits"], dtype=np.float64)
                labels = np.asarray(video["au_label"], dtype=np.float64)
                entry["au_f1_mean"] = au_metrics(scores, labels, au_threshold)["f1_mean"]
                au_scores.append(scores.reshape(-1, scores.shape[-1]))
                au_labels.append(labels.reshape(-1, labels.shape[-1]))
                lengths.append(scores.shape[0])
            if lengths:
                entry["num_frames"] = int(max(lengths))
        except UserError as e:
            raise UserError(f"video {vid}: {e}") from None
        per_video.append(entry)

    result: dict = {"num_videos": len(per_video), "window_s": window_s, "method": method}
    for kind, _ in _RATE_TASKS:
        preds, labels, snrs = all_rates[kind]
        cat = [np.concatenate(v) if v else np.zeros(0) for v in (preds, labels, snrs)]
        for key, value in rate_errors(cat[0], cat[1]).items():
            result[f"{kind}_{key}"] = value
        snr = cat[2][np.isfinite(cat[2])]
        result[f"{kind}_snr"] = float(np.mean(snr)) if snr.size else float("nan")
        result[f"{kind}_snr_se"] = float(np.std(snr) / math.sqrt(snr.size)) if snr.size else float("nan")
    if au_scores:
        num_au = au_scores[0].shape[-1]
        if any(s.shape[-1] != num_au for s in au_scores):
            raise UserError("videos disagree on the number of AUs")
        au = au_metrics(np.concatenate(au_scores), np.concatenate(au_labels), au_threshold)
        names = AU_NAMES if num_au == len(AU_NAMES) else tuple(f"AU{j}" for j in range(num_au))
        for key in ("f1", "precision", "recall", "accuracy"):
            result[f"au_{key}_mean"] = au[f"{key}_mean"]
            result[f"au_{key}"] = dict(zip(names, au[key].tolist(), strict=True))
        result["au_support"] = dict(zip(names, au["support"].tolist(), strict=True))
    result["per_video"] = per_video
    logger.info(
        "scored %d videos: HR MAE %s, RR MAE %s, AU F1 %s", len(per_video),
        _fmt(result.get("hr_mae")), _fmt(result.get("rr_mae")), _fmt(result.get("au_f1_mean")),
    )
    return _jsonify(result)


def _fmt(x) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"
