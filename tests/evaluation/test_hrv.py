"""HRV against closed-form pulse trains (known beat times) and the synthetic generator's own beats."""

import numpy as np
import pytest

from bigsmall_jax.datasets.preprocess import diff_normalize_label
from bigsmall_jax.evaluation import hrv
from bigsmall_jax.synthetic import waveforms

FS = 30.0


def _gaussian_train(ibis_s, fs=FS, first=1.0, width=0.08):
    """A pulse train with a Gaussian peak at each beat; returns (wave (T,), beat times (B,))."""
    beats = first + np.concatenate([[0.0], np.cumsum(ibis_s)])
    t = np.arange(int((beats[-1] + first) * fs)) / fs
    return sum(np.exp(-0.5 * ((t - b) / width) ** 2) for b in beats), beats


def test_statistics_of_known_intervals():
    # Intervals alternating 800 / 900 ms: mean 850, successive differences all +-100 ms.
    beats = np.concatenate([[0.0], np.cumsum(np.tile([0.8, 0.9], 10))])
    h = hrv.hrv_from_beats(beats)
    np.testing.assert_allclose(h.ibi_ms, np.tile([800.0, 900.0], 10))
    assert h.mean_ibi_ms == pytest.approx(850.0)
    assert h.sdnn_ms == pytest.approx(50.0 * np.sqrt(20 / 19))  # +-50 around the mean, ddof=1
    assert h.rmssd_ms == pytest.approx(100.0)
    assert h.pnn50_percent == pytest.approx(100.0)
    # Intervals 1000, 1040, 1000, 1100: differences 40, 40, 100 -> one of three above 50 ms.
    h = hrv.hrv_from_beats(np.cumsum([0.0, 1.0, 1.04, 1.0, 1.1]))
    assert h.pnn50_percent == pytest.approx(100 / 3)
    assert h.rmssd_ms == pytest.approx(np.sqrt((40**2 + 40**2 + 100**2) / 3))
    few = hrv.hrv_from_beats([0.5, 1.3])
    assert few.mean_ibi_ms == pytest.approx(800.0) and few.sdnn_ms is None and few.rmssd_ms is None


@pytest.mark.parametrize("ibis", [np.full(30, 0.75), np.tile([0.8, 0.9], 15), 0.7 + 0.2 * np.sin(np.arange(30) / 3)])
def test_beats_of_a_diff_normalized_pulse_train(ibis):
    wave, beats = _gaussian_train(ibis)
    found = hrv.beat_times(diff_normalize_label(wave), FS)
    assert len(found) == len(beats)
    np.testing.assert_allclose(found, beats, atol=0.012)  # well under one frame (33 ms)
    got, want = hrv.hrv_from_beats(found), hrv.hrv_from_beats(beats)
    assert got.mean_ibi_ms == pytest.approx(want.mean_ibi_ms, abs=1.0)
    assert got.rmssd_ms == pytest.approx(want.rmssd_ms, abs=0.05 * want.rmssd_ms + 3.0)
    assert got.sdnn_ms == pytest.approx(want.sdnn_ms, abs=0.05 * want.sdnn_ms + 3.0)


def test_refractory_limit_keeps_beats_apart():
    # A 150 bpm train (0.4 s, the limit) is found whole; no two beats are ever closer than the limit.
    wave, beats = _gaussian_train(np.full(40, 0.4), width=0.05)
    found = hrv.beat_times(diff_normalize_label(wave), FS)
    assert len(found) == len(beats)
    assert np.min(np.diff(found)) >= hrv.REFRACTORY_S - 1.0 / FS


@pytest.mark.parametrize("seed", [0, 1])
def test_synthetic_generator_beats(seed):
    """The generator's pulse is `ppg_shape` of a phase integrating its heart-rate track: its systolic peaks
    are where the phase crosses k + 0.25 (`ppg_shape`'s systolic Gaussian), the generator's own beat times."""
    rng = np.random.default_rng(seed)
    n = int(60 * FS)
    hr = waveforms.rate_track(rng, n, FS, (55.0, 100.0), 3.0, max_hz=0.05)
    phase = waveforms.phase_from_rate(hr, FS, rng.uniform())
    pulse = waveforms.ppg_shape(phase, 0.45)
    k = np.arange(np.ceil(phase[0] - 0.25), np.floor(phase[-1] - 0.25) + 1) + 0.25
    truth = np.interp(k, phase, np.arange(n) / FS)
    truth = truth[(truth > 1.0) & (truth < n / FS - 1.0)]  # the band-pass's edges
    found = hrv.beat_times(diff_normalize_label(pulse), FS)
    found = found[(found > 1.0 - 0.1) & (found < n / FS - 1.0 + 0.1)]
    nearest = np.abs(found[:, None] - truth[None]).min(axis=1)
    assert len(found) == len(truth)
    assert np.max(nearest) < 0.05  # the diastolic wave skews the band-passed peak by a few ms
    got, want = hrv.hrv_from_beats(found), hrv.hrv_from_beats(truth)
    assert got.mean_ibi_ms == pytest.approx(want.mean_ibi_ms, abs=2.0)
    assert got.sdnn_ms == pytest.approx(want.sdnn_ms, rel=0.1)
    assert got.rmssd_ms == pytest.approx(want.rmssd_ms, abs=3.0)
