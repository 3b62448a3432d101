"""Signal quality of a rate estimate: the SNR of the wave around its own spectral peak, and a low-quality flag.

The rate is the paper's (`signals.process_wave`, then the periodogram's peak inside the band). Its quality
index is the periodogram power within `HALF_WIDTH_PER_MIN` of that peak and of its second harmonic, over the
power in the rest of the band, in dB (`signals.snr_db`'s definition around the label's rate, here around the
estimate's; with ±2 per minute for breathing, whose band is too narrow for the pulse's ±6). A wave with
one clear rhythm scores high; noise spreads its power over the band and scores low.

`LOW_QUALITY_DB` is the flag's threshold: the 95th percentile of the index on pure noise (white Gaussian
diff-normalized waves, 10 s at 30 fps, the live window; 2000 draws, seed 0: `calibrate_threshold`),
rounded up, so that at least 95% of rates read from noise alone are flagged. Longer windows give noise lower scores.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bigsmall_jax.errors import UserError
from bigsmall_jax.evaluation import signals

HALF_WIDTH_PER_MIN = {"hr": signals.SNR_DEVIATION_PER_MIN, "rr": 2.0}
LOW_QUALITY_DB = {"hr": 0.0, "rr": 3.0}  # the noise percentiles measured: -0.19 dB (hr), 2.96 dB (rr)


@dataclasses.dataclass(frozen=True)
class RateEstimate:
    """A rate with its quality.

    Attributes:
      rate: per minute (None: the wave is too short for the band-pass).
      snr_db: quality index in dB (None with no rate; NaN-free).
      low_quality: True when ``snr_db < LOW_QUALITY_DB[kind]`` or there is no rate.
    """

    rate: float | None
    snr_db: float | None
    low_quality: bool

    def to_dict(self, name: str) -> dict:
        """``{name: rate, name_snr_db: ..., name_low_quality: ...}`` (JSON values)."""
        stem = name.rsplit("_", 1)[0]
        return {name: self.rate, f"{stem}_snr_db": None if self.snr_db is None else round(self.snr_db, 3),
                f"{stem}_low_quality": bool(self.low_quality)}


def peak_snr_db(processed: np.ndarray, fs: float, kind: str) -> tuple[float, float]:
    """(rate per minute, SNR in dB around it) of a wave already conditioned by `signals.process_wave`."""
    low, high = signals.band_for(kind)
    freqs, pxx = signals.periodogram(processed, fs)
    rate = signals.rate_fft(processed, fs, low, high)
    f1, dev = rate / 60.0, HALF_WIDTH_PER_MIN[kind] / 60.0
    near = (np.abs(freqs - f1) <= dev) | (np.abs(freqs - 2 * f1) <= dev)
    band = (freqs >= low) & (freqs <= high)
    signal_power = float(np.sum(pxx[near]))
    noise_power = float(np.sum(pxx[band & ~near]))
    if signal_power <= 0.0:
        return rate, -100.0
    if noise_power <= 0.0:
        return rate, 100.0
    return rate, float(np.clip(10.0 * np.log10(signal_power / noise_power), -100.0, 100.0))


def rate_estimate(wave, fs: float, kind: str, diff_normalized: bool = True) -> RateEstimate:
    """The rate of a (T,) wave with its quality (no rate, flagged, when it is too short for the band-pass)."""
    try:
        processed = signals.process_wave(wave, fs, kind, diff_normalized)
        rate, snr = peak_snr_db(processed, fs, kind)
    except UserError:
        return RateEstimate(None, None, True)
    return RateEstimate(rate, snr, snr < LOW_QUALITY_DB[kind])


def calibrate_threshold(kind: str, seconds: float = 10.0, fs: float = 30.0, draws: int = 2000, seed: int = 0,
                        percentile: float = 95.0) -> float:
    """The `percentile` of the quality index over white-noise diff-normalized waves (how `LOW_QUALITY_DB`
    was chosen)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fs))
    scores = [peak_snr_db(signals.process_wave(rng.standard_normal(n), fs, kind), fs, kind)[1] for _ in range(draws)]
    return float(np.percentile(scores, percentile))


__all__ = ["HALF_WIDTH_PER_MIN", "LOW_QUALITY_DB", "RateEstimate", "calibrate_threshold", "peak_snr_db",
           "rate_estimate"]
