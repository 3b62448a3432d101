"""Signal processing of the paper's rate protocol (the rPPG-Toolbox recipe): from a wave to a rate.

1. a diff-normalized wave (what the model predicts, and the diff-normalized label) is integrated back
   with a cumulative sum;
2. smoothness-priors detrending (Tarvainen et al. 2002, lambda = 100);
3. a Butterworth order-1 band-pass applied forwards and backwards (`scipy.signal.filtfilt`):
   0.75-2.5 Hz for heart rate (HR), 0.13-0.5 Hz for respiration rate (RR);
4. the rate: the peak of the periodogram inside the band (``method="fft"``, the protocol: a grid of
   60 * fs / nfft per minute, nfft the next power of 2 of the length), the peak of the same periodogram
   zero-padded `FINE_PAD` times further (``method="fine"``: a 16x finer grid, so errors smaller than one
   protocol bin still show), or the mean interval between peaks (``method="peak"``), in beats or breaths
   per minute.

The SNR of a predicted pulse is measured around the label's rate (`snr_db`). All waves are 1-D numpy
arrays of shape (T,) sampled at ``fs`` Hz; all rates are per minute.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.signal

from bigsmall_jax.errors import UserError

# Pass bands in Hz of the paper's protocol.
BANDS: dict[str, tuple[float, float]] = {"hr": (0.75, 2.5), "rr": (0.13, 0.5)}
DETREND_LAMBDA = 100.0
FILTER_ORDER = 1
# Half width of the SNR's signal windows around the label's first and second harmonics, per minute.
SNR_DEVIATION_PER_MIN = 6.0
FINE_PAD = 16  # "fine": nfft 16x the protocol's
# Periodogram methods and their zero-padding of the protocol's nfft; "peak" reads peak intervals instead.
PERIODOGRAM_PAD = {"fft": 1, "fine": FINE_PAD}
RATE_METHODS = (*PERIODOGRAM_PAD, "peak")


def as_wave(signal, name: str = "wave") -> np.ndarray:
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


def periodogram(signal, fs: float, pad: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """`scipy.signal.periodogram` with nfft = pad x the next power of 2 of len and no detrending.

    Returns:
      freqs (nfft // 2 + 1,) in Hz and power spectral density (same shape).
    """
    x = np.asarray(signal, dtype=np.float64)
    nfft = pad * next_power_of_2(x.shape[0])
    return scipy.signal.periodogram(x, fs=fs, nfft=nfft, detrend=False)


def rate_fft(signal, fs: float, low_hz: float, high_hz: float, pad: int = 1) -> float:
    """Rate per minute: 60 x the frequency of the periodogram's peak inside [low_hz, high_hz].

    The resolution is one FFT bin, 60 * fs / nfft per minute, nfft = pad x the next power of 2 of
    len(signal) (pad 1: the protocol's).
    """
    freqs, pxx = periodogram(signal, fs, pad)
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
    x = as_wave(wave)
    if diff_normalized:
        x = np.cumsum(x)
    x = detrend(x, DETREND_LAMBDA)
    return bandpass(x, fs, low, high, FILTER_ORDER)


def check_method(method: str) -> None:
    """Raises `UserError` unless `method` is one of `RATE_METHODS`."""
    if method not in RATE_METHODS:
        raise UserError(f"unknown rate method {method!r}; expected one of {', '.join(RATE_METHODS)}")


def rate_of_processed(x: np.ndarray, fs: float, kind: str = "hr", method: str = "fft") -> float:
    """The rate per minute of a wave already conditioned by `process_wave`: `rate_fft` in the kind's band
    (the methods of `PERIODOGRAM_PAD`, with their padding) or `rate_peaks` (any other method; `wave_to_rate`
    checks it)."""
    if method in PERIODOGRAM_PAD:
        low, high = band_for(kind)
        return rate_fft(x, fs, low, high, PERIODOGRAM_PAD[method])
    return rate_peaks(x, fs)


def wave_to_rate(
    wave, fs: float, kind: str = "hr", diff_normalized: bool = True, method: str = "fft"
) -> float:
    """Heart rate (beats/min) or respiration rate (breaths/min) of a wave, by the paper's protocol.

    Args:
      wave: (T,) wave sampled at ``fs`` Hz.
      fs: sampling rate in Hz.
      kind: ``"hr"`` or ``"rr"``.
      diff_normalized: integrate (cumsum) first, for diff-normalized waves.
      method: ``"fft"`` (periodogram peak in the band), ``"fine"`` (the same on a `FINE_PAD` x finer
        grid) or ``"peak"`` (mean peak interval; NaN if fewer than two peaks).

    Returns:
      The rate per minute.
    """
    check_method(method)
    return rate_of_processed(process_wave(wave, fs, kind, diff_normalized), fs, kind, method)


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
    x = process_wave(pred_wave, fs, kind, diff_normalized) if process else as_wave(pred_wave)
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


