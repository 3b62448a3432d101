"""Heart-rate variability from a predicted pulse wave: beat times, inter-beat intervals and the time-domain
HRV statistics (mean IBI, SDNN, RMSSD, pNN50).

Beat detector: the pulse is conditioned as for the heart rate (`signals.process_wave`: cumulative sum of the
diff-normalized wave, smoothness-priors detrend, Butterworth band-pass 0.75-2.5 Hz, zero phase); its local
maxima (`scipy.signal.find_peaks`) at least `REFRACTORY_S` apart and standing out by a prominence of at least
`PROMINENCE_STD` standard deviations of the conditioned wave are the beats, each refined to sub-frame time
by a parabola through the peak sample and its two neighbours. The refractory limit is the shortest interval
the pass band admits (2.5 Hz = 150 beats/min), so no beat the rate estimate could count is dropped; the
prominence drops the small wiggles a first-order band-pass leaves between beats (the dicrotic wave).
A diff-normalized wave's sample t holds x[t+1] - x[t], so its cumulative sum at t is the pulse at t + 1:
beat times are shifted by one sample to match the frames.

All times are in seconds (relative to the first frame), intervals in milliseconds in the statistics.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import scipy.signal

from bigsmall_jax.evaluation import signals

REFRACTORY_S = 1.0 / signals.BANDS["hr"][1]  # 0.4 s: no two beats closer than the band's fastest rate
PROMINENCE_STD = 0.5  # a beat's prominence, in standard deviations of the band-passed wave
NN50_MS = 50.0  # pNN50: successive intervals differing by more than this
DETECTOR = (f"local maxima of the band-passed pulse ({signals.BANDS['hr'][0]}-{signals.BANDS['hr'][1]} Hz, "
            f"as for the heart rate) by scipy.signal.find_peaks at least {REFRACTORY_S:.2f} s apart "
            f"(refractory limit = the band's fastest rate) with a prominence of at least {PROMINENCE_STD} standard "
            "deviations, refined by parabolic interpolation")


@dataclasses.dataclass(frozen=True)
class HRV:
    """Beats and time-domain HRV of one pulse wave (None: fewer than 2 intervals, or 1 for mean IBI).

    Attributes:
      beat_times_s: (B,) beat times in seconds from the first frame.
      ibi_ms: (B-1,) inter-beat intervals in ms.
      mean_ibi_ms: mean interval (ms); 60000 / mean_ibi_ms is the mean beat rate.
      sdnn_ms: standard deviation of the intervals (ms, ddof=1).
      rmssd_ms: root mean square of successive interval differences (ms).
      pnn50_percent: share of successive differences above 50 ms, in percent.
    """

    beat_times_s: np.ndarray
    ibi_ms: np.ndarray
    mean_ibi_ms: float | None
    sdnn_ms: float | None
    rmssd_ms: float | None
    pnn50_percent: float | None

    def to_dict(self, decimals: int = 4) -> dict[str, Any]:
        """Plain JSON values, with the detector's description."""
        r = lambda v: None if v is None else round(float(v), decimals)
        return {"beat_times_s": [r(v) for v in self.beat_times_s], "ibi_ms": [r(v) for v in self.ibi_ms],
                "mean_ibi_ms": r(self.mean_ibi_ms), "sdnn_ms": r(self.sdnn_ms), "rmssd_ms": r(self.rmssd_ms),
                "pnn50_percent": r(self.pnn50_percent), "n_beats": int(len(self.beat_times_s)),
                "detector": DETECTOR}


def refine_peaks(x: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Sub-sample positions of local maxima: the vertex of the parabola through x[p-1], x[p], x[p+1]
    (the sample itself at the ends or where the three are collinear). Returns float sample indices."""
    x = np.asarray(x, np.float64)
    pos = np.asarray(peaks, np.float64).copy()
    inner = (peaks > 0) & (peaks < len(x) - 1)
    p = peaks[inner]
    left, mid, right = x[p - 1], x[p], x[p + 1]
    denom = left - 2.0 * mid + right
    safe = np.abs(denom) > 1e-12
    offset = np.zeros_like(mid)
    offset[safe] = 0.5 * (left[safe] - right[safe]) / denom[safe]
    pos[inner] = p + np.clip(offset, -0.5, 0.5)
    return pos


def beat_times(wave, fs: float, diff_normalized: bool = True) -> np.ndarray:
    """Beat times in seconds of a pulse wave (see the module docstring for the detector).

    Args:
      wave: (T,) pulse wave: the model's diff-normalized output (default) or a plain pulse
        (``diff_normalized=False``).
      fs: sampling rate in Hz.

    Raises:
      UserError: the wave is too short for the band-pass.
    """
    x = signals.process_wave(wave, fs, "hr", diff_normalized)
    distance = max(1, math.ceil(REFRACTORY_S * fs - 1e-9))
    peaks, _ = scipy.signal.find_peaks(x, distance=distance, prominence=PROMINENCE_STD * float(np.std(x)))
    return (refine_peaks(x, peaks) + (1.0 if diff_normalized else 0.0)) / fs


def hrv_from_beats(beats_s) -> HRV:
    """The time-domain HRV statistics of beat times (s, increasing)."""
    beats = np.asarray(beats_s, np.float64)
    ibi = np.diff(beats) * 1000.0
    mean = float(np.mean(ibi)) if ibi.size >= 1 else None
    sdnn = float(np.std(ibi, ddof=1)) if ibi.size >= 2 else None
    succ = np.diff(ibi)
    rmssd = float(np.sqrt(np.mean(succ**2))) if succ.size >= 1 else None
    pnn50 = float(100.0 * np.mean(np.abs(succ) > NN50_MS)) if succ.size >= 1 else None
    return HRV(beats, ibi, mean, sdnn, rmssd, pnn50)


def hrv(wave, fs: float, diff_normalized: bool = True) -> HRV:
    """`hrv_from_beats` of `beat_times`."""
    return hrv_from_beats(beat_times(wave, fs, diff_normalized))


__all__ = ["DETECTOR", "HRV", "REFRACTORY_S", "beat_times", "hrv", "hrv_from_beats", "refine_peaks"]
