"""Physiological and behavioural time series for the synthetic videos, one value per video frame.

Everything here is plain numpy driven by an explicit `numpy.random.Generator`, so a fixed seed gives
the same waves. Times are in seconds, rates in events per minute (beats/min, breaths/min), frequencies
in Hz.

* Pulse (`pulse_wave`): a photoplethysmogram (PPG) built beat by beat from its phase: each beat is a
  systolic Gaussian peak followed by a smaller, wider diastolic one (the dicrotic notch lies between
  them). The phase integrates an instantaneous heart rate that drifts slowly about a per-video base
  rate, so `hr_bpm[t]` is the true instantaneous rate. The amplitude varies slightly (slow random
  modulation plus a small respiratory modulation, as in real PPG).
* Respiration (`resp_wave`): a breathing wave from its phase, inhalation shorter than exhalation, with a
  slowly drifting rate and a slightly varying depth. It rises during inhalation.
* Action units (`au_intensities`): per-AU intensity tracks in [0, 1] made of episodes (raised-cosine
  onset, apex plateau, raised-cosine offset). Some AUs are driven together (AU01+AU02 brows up,
  AU06+AU12 smile, AU23+AU24 lip press), AU15 is suppressed while AU12 is active, and the episode rates
  are set so that the fraction of frames with intensity > `AU_THRESHOLD` matches `AU_BASE_RATES`.
* Nuisances: `blink_track` (eye closure in [0, 1]), `smooth_noise` (slow random curves for head
  motion and illumination drift), `band_noise` (Gaussian noise inside a band: fidgeting).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bigsmall_jax.datasets.recording import AU_NAMES

HR_RANGE_BPM = (45.0, 150.0)
RR_RANGE_BPM = (6.0, 30.0)
# Resting adults: (mean, sd, share of videos) of the base heart and breathing rates, per minute; the other
# videos draw their base rate uniformly over the whole range (exercise, stress, slow breathing). Half the
# heart rates are resting, so that a training set of a few dozen videos still holds several fast hearts
# (docs/realism.md).
HR_TYPICAL = (76.0, 12.0, 0.5)
RR_TYPICAL = (16.0, 4.0, 0.8)
AU_THRESHOLD = 0.5  # binary AU label = intensity > AU_THRESHOLD

# Target fraction of frames with each AU on (label 1), in `AU_NAMES` order.
AU_BASE_RATES: tuple[float, ...] = (
    0.20,  # AU01 inner brow raiser
    0.18,  # AU02 outer brow raiser
    0.15,  # AU04 brow lowerer
    0.40,  # AU06 cheek raiser
    0.35,  # AU07 lid tightener
    0.30,  # AU10 upper lip raiser
    0.40,  # AU12 lip corner puller
    0.25,  # AU14 dimpler
    0.12,  # AU15 lip corner depressor
    0.18,  # AU17 chin raiser
    0.20,  # AU23 lip tightener
    0.15,  # AU24 lip pressor
)
# BCE pos_weight matching these rates (negatives / positives), the synthetic counterpart of
# `bigsmall_jax.datasets.recording.BP4D_AU_POS_WEIGHT`.
AU_POS_WEIGHT: tuple[float, ...] = tuple(round((1.0 - p) / p, 3) for p in AU_BASE_RATES)
# AUs driven together by a shared episode source, and the fraction of frames that source is on.
AU_GROUPS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("AU01", "AU02"), 0.12),
    (("AU06", "AU12"), 0.28),
    (("AU23", "AU24"), 0.10),
)
AU_EXCLUSIVE = ("AU12", "AU15")  # the second is suppressed while the first is active

EPISODE_LABEL_S = (1.0, 4.0)  # duration with intensity above threshold, uniform
# Onset and offset durations, uniform in [lo, hi): spontaneous expressions rise in about half a second to a
# second and fade more slowly. Faster ramps put the AUs' shading changes into the pulse band (0.7-3 Hz),
# where at 0.3-1 s they were four times the pulse's colour change on the cheeks.
EPISODE_ONSET_S = (0.5, 1.2)
EPISODE_OFFSET_S = (0.8, 2.0)
EPISODE_APEX = (0.8, 1.0)  # apex intensity, uniform
_MIN_GAP_S = 1.0  # between the label periods of one source; keeps its episodes apart


def smooth_noise(rng: np.random.Generator, n: int, fps: float, max_hz: float, n_terms: int = 8) -> np.ndarray:
    """A smooth random curve with content below `max_hz`, scaled to peak |value| = 1.

    A sum of `n_terms` sinusoids with random frequencies in (0, max_hz], amplitudes and phases.

    Returns:
      (n,) float64 with max |x| == 1 (zeros if n == 0).
    """
    t = np.arange(n) / fps
    freqs = rng.uniform(0.05, 1.0, n_terms) * max_hz
    amps = rng.uniform(0.3, 1.0, n_terms)
    phases = rng.uniform(0.0, 2.0 * np.pi, n_terms)
    x = np.sum(amps[:, None] * np.sin(2.0 * np.pi * freqs[:, None] * t[None, :] + phases[:, None]), axis=0)
    peak = np.max(np.abs(x)) if n else 0.0
    return x / peak if peak > 0 else x


def band_noise(rng: np.random.Generator, n: int, fps: float, lo_hz: float, hi_hz: float) -> np.ndarray:
    """Gaussian noise with a flat spectrum inside [lo_hz, hi_hz] and none outside, scaled to unit RMS.

    White noise with the frequencies outside the band zeroed in its real FFT: unlike `smooth_noise`'s few
    sinusoids, its power spreads over the whole band, so no single frequency stands out.

    Returns:
      (n,) float64 with RMS 1 (zeros if the band holds no FFT frequency of n samples).
    """
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / fps)
    spec[(f < lo_hz) | (f > hi_hz)] = 0.0
    x = np.fft.irfft(spec, n)
    rms = float(np.sqrt(np.mean(x**2))) if n else 0.0
    return x / rms if rms > 0 else np.zeros(n)


def rate_track(rng: np.random.Generator, n: int, fps: float, rate_range: tuple[float, float], drift: float,
               max_hz: float, typical: tuple[float, float, float] | None = None) -> np.ndarray:
    """An instantaneous rate per frame: a base rate, plus a slow drift.

    Args:
      rate_range: (lo, hi) in events/min; the whole track stays inside it.
      drift: maximum excursion from the base rate, events/min.
      max_hz: the drift's highest frequency.
      typical: None: the base rate is uniform in the range. (mean, sd, share): with probability `share`
        it is normal(mean, sd) (a population at rest), otherwise uniform in the range; clipped to it.

    Returns:
      (n,) float64 rate in events/min.
    """
    lo, hi = rate_range
    drift = min(max(drift, 0.0), 0.5 * (hi - lo))
    base = rng.uniform(lo + drift, hi - drift)  # drawn first either way: typical=None keeps its old stream
    if typical is not None and rng.uniform() < typical[2]:
        base = float(np.clip(rng.normal(typical[0], typical[1]), lo + drift, hi - drift))
    return base + drift * smooth_noise(rng, n, fps, max_hz)


def phase_from_rate(rate_per_min: np.ndarray, fps: float, phase0: float = 0.0) -> np.ndarray:
    """Cumulative phase in cycles at each frame, integrating the instantaneous rate (trapezoid rule)."""
    f = np.asarray(rate_per_min, np.float64) / 60.0
    steps = 0.5 * (f[1:] + f[:-1]) / fps
    return phase0 + np.concatenate([[0.0], np.cumsum(steps)])


def ppg_shape(phase: np.ndarray, diastolic: float = 0.45) -> np.ndarray:
    """PPG beat shape at phase (cycles): systolic + diastolic Gaussians, about 0 at the foot, 1 at the peak."""
    f = np.mod(phase, 1.0)
    out = np.zeros_like(f)
    for k in (-1.0, 0.0, 1.0):  # wrap so each beat joins the next smoothly
        out += np.exp(-0.5 * ((f + k - 0.25) / 0.075) ** 2)
        out += diastolic * np.exp(-0.5 * ((f + k - 0.56) / 0.11) ** 2)
    return out


def resp_shape(phase: np.ndarray, inhale: float = 0.4) -> np.ndarray:
    """Breathing shape at phase (cycles), in [-1, 1]: rises for the first `inhale` of a cycle, then falls."""
    f = np.mod(phase, 1.0)
    w = np.where(f < inhale, 0.5 * f / inhale, 0.5 + 0.5 * (f - inhale) / (1.0 - inhale))
    return -np.cos(2.0 * np.pi * w)


def resp_wave(rng: np.random.Generator, n: int, fps: float, rr_range=RR_RANGE_BPM,
              drift_bpm: float = 1.5, typical: tuple[float, float, float] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """A respiration wave and its instantaneous rate (`typical`: as in `rate_track`).

    Returns:
      resp: (n,) float64, about [-1, 1] (depth varies by ~15%), up = inhalation.
      rr_bpm: (n,) float64 breaths/min, inside `rr_range`.
    """
    rr = rate_track(rng, n, fps, rr_range, drift_bpm * rng.uniform(0.5, 1.0), max_hz=0.04, typical=typical)
    phase = phase_from_rate(rr, fps, rng.uniform())
    depth = 1.0 + 0.15 * smooth_noise(rng, n, fps, max_hz=0.5 * float(np.mean(rr)) / 60.0)
    return resp_shape(phase, rng.uniform(0.35, 0.45)) * depth, rr


def pulse_wave(rng: np.random.Generator, n: int, fps: float, hr_range=HR_RANGE_BPM, drift_bpm: float = 3.0,
               resp: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A PPG wave and its instantaneous heart rate.

    Args:
      resp: optional (n,) respiration wave in about [-1, 1]; modulates the pulse amplitude by ~5%.

    Returns:
      bvp: (n,) float64, about [0, 1.1] (beat foot 0, systolic peak ~1).
      hr_bpm: (n,) float64 beats/min, inside `hr_range`.
    """
    hr = rate_track(rng, n, fps, hr_range, drift_bpm * rng.uniform(0.5, 1.0), max_hz=0.05)
    phase = phase_from_rate(hr, fps, rng.uniform())
    amp = 1.0 + 0.08 * smooth_noise(rng, n, fps, max_hz=0.3)
    if resp is not None:
        amp = amp + 0.05 * np.asarray(resp, np.float64)
    return ppg_shape(phase, rng.uniform(0.35, 0.6)) * amp, hr


# ----------------------------------------------------------------------------------------------------------
# Action units.


def _ramp(x: np.ndarray) -> np.ndarray:
    """Raised cosine 0 -> 1 for x in [0, 1], clipped outside."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


@dataclasses.dataclass(frozen=True)
class Episode:
    """One AU episode: times in s; intensity rises over [start, start + onset], holds `apex` until
    `start + onset + hold`, falls to 0 over the next `offset` seconds."""

    start: float
    onset: float
    hold: float
    offset: float
    apex: float

    def intensity(self, t: np.ndarray) -> np.ndarray:
        up = _ramp((t - self.start) / self.onset)
        down = 1.0 - _ramp((t - self.start - self.onset - self.hold) / self.offset)
        return self.apex * np.minimum(up, down)


def _above_fraction(apex: float) -> float:
    """Fraction of a raised-cosine ramp to `apex` that lies above AU_THRESHOLD."""
    return 1.0 - np.arccos(np.clip(1.0 - 2.0 * AU_THRESHOLD / apex, -1.0, 1.0)) / np.pi


def episodes(rng: np.random.Generator, duration_s: float, occupancy: float) -> list[Episode]:
    """Episodes of one source so that about `occupancy` of the time has intensity above threshold.

    An alternating renewal process, started in its stationary regime: label periods uniform in
    `EPISODE_LABEL_S`, gaps between them `_MIN_GAP_S` + exponential.
    """
    if occupancy <= 0.0:
        return []
    mean_label = 0.5 * sum(EPISODE_LABEL_S)
    mean_gap = max(mean_label * (1.0 - occupancy) / occupancy, _MIN_GAP_S + 1e-3)
    t = -rng.uniform(0.0, mean_label + mean_gap)
    out = []
    while t < duration_s:
        label = rng.uniform(*EPISODE_LABEL_S)
        onset, offset = rng.uniform(*zip(EPISODE_ONSET_S, EPISODE_OFFSET_S, strict=True))
        apex = rng.uniform(*EPISODE_APEX)
        frac = _above_fraction(apex)
        hold = max(label - frac * (onset + offset), 0.0)
        # Place the label period [t, t + label): the onset ramp starts before it.
        start = t - (1.0 - frac) * onset
        out.append(Episode(start, onset, hold, offset, apex))
        t += label + _MIN_GAP_S + rng.exponential(mean_gap - _MIN_GAP_S)
    return out


def _track(eps: list[Episode], t: np.ndarray) -> np.ndarray:
    """Max over episodes of their intensities at times t (uniformly spaced, ascending)."""
    out = np.zeros_like(t)
    if len(t) == 0:
        return out
    dt = t[1] - t[0] if len(t) > 1 else 1.0
    for e in eps:  # each episode touches only its own support
        i0 = max(0, int(np.floor((e.start - t[0]) / dt)))
        i1 = min(len(t), int(np.ceil((e.start + e.onset + e.hold + e.offset - t[0]) / dt)) + 1)
        if i0 < i1:
            out[i0:i1] = np.maximum(out[i0:i1], e.intensity(t[i0:i1]))
    return out


def au_source_occupancies(base_rates=AU_BASE_RATES) -> tuple[np.ndarray, list[float]]:
    """Per-AU individual-source occupancies and per-group occupancies that give `base_rates`.

    Independent sources combine by max, so P(on) = 1 - (1 - p_individual) * (1 - p_group); AU15's
    individual rate is raised to make up for its suppression while AU12 is on.
    """
    rates = np.asarray(base_rates, np.float64)
    group_of = {}
    for members, p in AU_GROUPS:
        for m in members:
            group_of[m] = p
    ind = np.empty_like(rates)
    for i, name in enumerate(AU_NAMES):
        target = rates[i]
        if name == AU_EXCLUSIVE[1]:
            target = min(target / (1.0 - rates[AU_NAMES.index(AU_EXCLUSIVE[0])]), 0.9)
        ind[i] = 1.0 - (1.0 - target) / (1.0 - group_of.get(name, 0.0))
    return np.clip(ind, 0.0, 0.9), [p for _, p in AU_GROUPS]


def au_intensities(rng: np.random.Generator, n: int, fps: float, base_rates=AU_BASE_RATES) -> np.ndarray:
    """Intensity tracks of the 12 AUs.

    Returns:
      (n, 12) float64 in [0, 1], `AU_NAMES` order; the AU label is ``intensity > AU_THRESHOLD``.
    """
    duration = n / fps
    t = np.arange(n) / fps
    ind, group_p = au_source_occupancies(base_rates)
    out = np.zeros((n, len(AU_NAMES)))
    for i in range(len(AU_NAMES)):
        out[:, i] = _track(episodes(rng, duration, ind[i]), t)
    for (members, _), p in zip(AU_GROUPS, group_p, strict=True):
        shared = episodes(rng, duration, p)
        for m in members:
            # Each member follows the shared episodes with its own small lag and apex.
            lag = rng.uniform(0.0, 0.2)
            scale = rng.uniform(0.9, 1.0, len(shared))
            eps = [dataclasses.replace(e, start=e.start + lag, apex=min(1.0, e.apex * s / 0.95))
                   for e, s in zip(shared, scale, strict=True)]
            j = AU_NAMES.index(m)
            out[:, j] = np.maximum(out[:, j], _track(eps, t))
    a, b = (AU_NAMES.index(x) for x in AU_EXCLUSIVE)
    out[:, b] *= 1.0 - np.clip(out[:, a], 0.0, 1.0)
    return np.clip(out, 0.0, 1.0)


def au_labels(intensities: np.ndarray) -> np.ndarray:
    """Binary AU labels (T, 12) float32 in {0, 1} from intensities."""
    return (np.asarray(intensities) > AU_THRESHOLD).astype(np.float32)


def blink_track(rng: np.random.Generator, n: int, fps: float, rate_hz: float) -> np.ndarray:
    """Eye closure per frame in [0, 1]: Poisson blinks, each ~0.1 s closing, ~0.05 s closed, ~0.15 s opening."""
    t = np.arange(n) / fps
    if rate_hz <= 0:
        return np.zeros(n)
    s = -rng.exponential(1.0 / rate_hz)
    eps = []
    while s < n / fps:
        close, hold, open_ = rng.uniform(0.07, 0.12), rng.uniform(0.02, 0.08), rng.uniform(0.12, 0.2)
        eps.append(Episode(s, close, hold, open_, 1.0))
        s += close + hold + open_ + rng.exponential(1.0 / rate_hz)
    return _track(eps, t)


# ----------------------------------------------------------------------------------------------------------
# Heart-rate variability, ballistocardiography, talking (the physical generator).


def beat_times(rng: np.random.Generator, duration_s: float, hr_bpm_at, resp_at, rsa: float = 0.04,
               lf: float = 0.03, jitter: float = 0.015) -> np.ndarray:
    """Heartbeat times with heart-rate variability: beat-to-beat intervals 60 / HR(t) modulated by
    respiratory sinus arrhythmia (shorter while inhaling, relative depth `rsa`), a slow (~0.1 Hz, the
    baroreflex band) relative modulation of depth `lf` and white relative jitter `jitter`.

    Args:
      duration_s: beats cover [0, duration_s] (the first lies in [-interval, 0), the last after it).
      hr_bpm_at, resp_at: callables of a time array (s) giving the heart rate (beats/min) and the
        respiration wave (about [-1, 1], up = inhale).

    Returns:
      (n_beats,) float64 increasing beat times in seconds.
    """
    lf_freq, lf_phase = rng.uniform(0.07, 0.13), rng.uniform(0, 2 * np.pi)
    t = -rng.uniform(0.0, 1.0) * 60.0 / float(hr_bpm_at(np.array([0.0]))[0])
    out = [t]
    while t <= duration_s:
        at = np.array([t])
        ibi = 60.0 / float(hr_bpm_at(at)[0])
        ibi *= (1.0 - rsa * float(resp_at(at)[0]) + lf * np.sin(2 * np.pi * lf_freq * t + lf_phase)
                + jitter * rng.standard_normal())
        t += max(ibi, 0.25)
        out.append(t)
    return np.asarray(out)


def beat_phase(beats_s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pulse phase in cycles at times t: beat k (the systolic peak of `ppg_shape`, phase 0.25) at beats_s[k],
    linear in between."""
    k = np.clip(np.searchsorted(beats_s, t, side="right") - 1, 0, len(beats_s) - 2)
    frac = (t - beats_s[k]) / (beats_s[k + 1] - beats_s[k])
    return k + 0.25 + frac


def rate_from_beats(beats_s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Instantaneous heart rate (beats/min) at times t: 60 / the beat-to-beat interval, placed at the interval's
    midpoint and interpolated linearly between midpoints."""
    ibi = np.diff(beats_s)
    return np.interp(t, 0.5 * (beats_s[1:] + beats_s[:-1]), 60.0 / ibi)


def talk_track(rng: np.random.Generator, n: int, fps: float, fraction: float) -> np.ndarray:
    """Jaw opening per frame in [0, 1] while talking: speech turns (about `fraction` of the time) of
    syllables at 3-6 Hz with varying opening; 0 outside turns."""
    t = np.arange(n) / fps
    if fraction <= 0:
        return np.zeros(n)
    on = _track(episodes(rng, n / fps, fraction), t) > AU_THRESHOLD
    rate = rng.uniform(3.0, 6.0)
    phase = np.cumsum(rate * (1.0 + 0.3 * smooth_noise(rng, n, fps, 1.0)) / fps)
    syll = np.clip(np.sin(2 * np.pi * phase), 0.0, None) * (0.5 + 0.5 * np.abs(smooth_noise(rng, n, fps, 0.7)))
    return syll * on


def flicker_hz(mains_hz: float, fps: float) -> float:
    """The frequency (Hz) at which a light flickering at twice the mains frequency appears in video at fps:
    2 * mains aliased into [0, fps / 2] (0 when fps divides it: 25 fps under 50 Hz mains)."""
    f = (2.0 * mains_hz) % fps
    return float(min(f, fps - f))
