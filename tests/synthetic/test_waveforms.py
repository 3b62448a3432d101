"""Waveforms: PPG and respiration shapes, AU episodes and rates, blinks."""

from __future__ import annotations

import numpy as np
import pytest

from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.synthetic import waveforms as wf


def test_ppg_shape_has_systolic_peak_and_dicrotic_notch():
    phase = np.linspace(0.0, 1.0, 1000, endpoint=False)
    beat = wf.ppg_shape(phase)
    peak = np.argmax(beat)
    assert 0.2 < phase[peak] < 0.3
    # After the peak: a local minimum (notch) followed by a smaller local maximum (diastolic peak).
    d = np.diff(beat[peak:])
    turns = np.flatnonzero(np.diff(np.sign(d)) != 0)
    assert len(turns) >= 2
    notch, second = peak + turns[0] + 1, peak + turns[1] + 1
    assert beat[notch] < beat[second] < beat[peak]
    resp = wf.resp_shape(phase, inhale=0.4)
    assert np.argmax(resp) == pytest.approx(400, abs=2) and resp.max() == pytest.approx(1.0)


def test_au_base_rates_and_co_occurrence():
    rng = np.random.default_rng(123)
    labels = np.concatenate([wf.au_labels(wf.au_intensities(rng, 25 * 1200, 25.0)) for _ in range(4)])
    assert set(np.unique(labels)) == {0.0, 1.0}
    rates = labels.mean(0)
    np.testing.assert_allclose(rates, wf.AU_BASE_RATES, atol=0.04)
    assert np.all((rates > 0.08) & (rates < 0.55))
    i = {n: k for k, n in enumerate(AU_NAMES)}

    def p_given(a, b):  # P(a on | b on)
        return labels[labels[:, i[b]] == 1, i[a]].mean()

    for a, b in (("AU02", "AU01"), ("AU12", "AU06"), ("AU24", "AU23")):
        assert p_given(a, b) > max(1.6 * rates[i[a]], 0.4), (a, b)
    assert np.mean(labels[:, i["AU12"]] * labels[:, i["AU15"]]) < 0.01
    # Episodes: label-on runs last about 1-4 s.
    runs = []
    for j in range(len(AU_NAMES)):
        edges = np.diff(np.concatenate([[0], labels[: 25 * 1200, j], [0]]))
        runs += list((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)) / 25.0)
    assert 1.5 < np.median(runs) < 3.5 and np.percentile(runs, 5) > 0.7


def test_blink_closes_the_eyes_briefly():
    track = wf.blink_track(np.random.default_rng(0), 25 * 120, 25.0, rate_hz=0.3)
    closed = track > 0.5
    starts = np.flatnonzero(np.diff(closed.astype(int)) == 1)
    assert 15 < len(starts) < 60  # ~36 blinks in 2 min
    assert closed.mean() < 0.05


def test_rate_track_typical_rates():
    """`typical=(mean, sd, share)`: a share of tracks is drawn around the resting mean, the rest uniformly."""
    rng = np.random.default_rng(0)
    lo, hi = 45.0, 150.0
    at_rest = np.array([wf.rate_track(rng, 50, 25.0, (lo, hi), 0.0, 0.05, (76.0, 12.0, 1.0))[0]
                        for _ in range(2000)])
    assert abs(at_rest.mean() - 76.0) < 1.0 and abs(at_rest.std() - 12.0) < 1.0
    mixed = np.array([wf.rate_track(rng, 50, 25.0, (lo, hi), 5.0, 0.05, (76.0, 12.0, 0.8)).mean()
                      for _ in range(2000)])
    assert mixed.min() >= lo and mixed.max() <= hi
    # A fifth uniform over 50-145: about 0.2 * 25/95 of all tracks above 120 beats/min (rest: none).
    assert 0.03 < np.mean(mixed > 120.0) < 0.08
    uniform = np.array([wf.rate_track(rng, 50, 25.0, (lo, hi), 0.0, 0.05)[0] for _ in range(2000)])
    assert abs(uniform.mean() - 97.5) < 2.0


def test_au_ramps_stay_out_of_the_pulse_band():
    """Onsets and offsets last `EPISODE_ONSET_S` / `EPISODE_OFFSET_S` (offsets slower), so an AU track keeps
    about 1% of its variance in the pulse band, 0.7-3 Hz (with 0.3-1 s ramps: 2.2%)."""
    rng = np.random.default_rng(1)
    eps = wf.episodes(rng, 2000.0, 0.3)
    onsets, offsets = np.array([e.onset for e in eps]), np.array([e.offset for e in eps])
    assert wf.EPISODE_ONSET_S[0] <= onsets.min() and onsets.max() < wf.EPISODE_ONSET_S[1]
    assert wf.EPISODE_OFFSET_S[0] <= offsets.min() and offsets.max() < wf.EPISODE_OFFSET_S[1]
    assert np.median(offsets) > np.median(onsets) + 0.3
    x = np.concatenate([wf.au_intensities(rng, 25 * 600, 25.0) for _ in range(2)])
    power = np.abs(np.fft.rfft(x - x.mean(0), axis=0)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 25.0)
    band = (f >= 0.7) & (f <= 3.0)
    assert np.mean(power[band].sum(0) / power[1:].sum(0)) < 0.013


def test_band_noise_is_flat_inside_its_band_and_empty_outside():
    x = wf.band_noise(np.random.default_rng(0), 25 * 400, 25.0, 0.5, 4.0)
    assert np.sqrt(np.mean(x**2)) == pytest.approx(1.0)
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 25.0)
    inside = (f >= 0.5) & (f <= 4.0)
    assert power[~inside].max() < 1e-18 * power.sum()
    halves = [power[inside & (f < 2.25)].mean(), power[inside & (f >= 2.25)].mean()]
    assert halves[0] == pytest.approx(halves[1], rel=0.1)  # flat: both halves of the band alike
    assert not wf.band_noise(np.random.default_rng(0), 10, 25.0, 20.0, 30.0).any()  # no frequency in the band
