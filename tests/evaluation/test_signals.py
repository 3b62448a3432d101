"""Tests of bigsmall_jax.evaluation.signals against closed-form cases and hand-computed numbers."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from rate_waves import diff_normalize, fft_bin_per_min, sinusoid

from bigsmall_jax.errors import UserError
from bigsmall_jax.evaluation import signals

# ------------------------------------------------------------------------------------------------
# Detrending
# ------------------------------------------------------------------------------------------------


def test_detrend_dense_is_the_textbook_formula_on_a_tiny_case():
    # N = 4, lambda = 1: D2 = [[1,-2,1,0],[0,1,-2,1]] written out by hand.
    d2 = np.array([[1.0, -2.0, 1.0, 0.0], [0.0, 1.0, -2.0, 1.0]])
    x = np.array([1.0, -2.0, 0.5, 3.0])
    expected = x - np.linalg.solve(np.eye(4) + d2.T @ d2, x)
    np.testing.assert_allclose(signals.detrend_dense(x, lam=1.0), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(signals.detrend(x, lam=1.0), expected, rtol=0, atol=1e-12)


def test_detrend_linear_time_equals_dense_on_long_signal():
    rng = np.random.default_rng(0)
    n = 2000
    x = np.cumsum(rng.standard_normal(n)) + 3.0 * rng.standard_normal(n) + np.linspace(0, 50, n)
    fast = signals.detrend(x, lam=100.0)
    dense = signals.detrend_dense(x, lam=100.0)
    np.testing.assert_allclose(fast, dense, rtol=0, atol=1e-8)
    # Another lambda, short odd lengths: the band structure must hold at the edges too.
    for m in (3, 4, 5, 11):
        np.testing.assert_allclose(signals.detrend(x[:m], 7.0), signals.detrend_dense(x[:m], 7.0), atol=1e-10)


def test_detrend_removes_linear_trend_and_keeps_fast_oscillation():
    n = 3000
    t = np.arange(n, dtype=np.float64)
    np.testing.assert_allclose(signals.detrend(5.0 - 0.02 * t), 0.0, atol=1e-8)
    # A 2 Hz wave at 30 fps is far above the smoother's cut-off (~0.5 Hz at lambda 100): kept intact
    # away from the edges, while the added ramp disappears.
    wave = np.sin(2 * np.pi * 2.0 / 30.0 * t)
    out = signals.detrend(wave + 0.01 * t)
    np.testing.assert_allclose(out[200:-200], wave[200:-200], atol=1e-2)


def test_detrend_timing_10_minutes_at_30fps():
    x = np.random.default_rng(1).standard_normal(18000)
    start = time.perf_counter()
    out = signals.detrend(x)
    elapsed = time.perf_counter() - start
    print(f"\ndetrend of 18,000 samples (10 min at 30 fps): {elapsed * 1e3:.2f} ms")
    assert out.shape == x.shape and np.all(np.isfinite(out))


# ------------------------------------------------------------------------------------------------
# Rates
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fs", [25.0, 30.0])
@pytest.mark.parametrize("bpm", [48.0, 66.0, 87.0, 114.0, 141.0])
def test_rate_of_pure_sinusoid(fs, bpm):
    wave = sinusoid(bpm, fs, 60.0)
    tol = fft_bin_per_min(wave.shape[0], fs)
    assert abs(signals.rate_fft(wave, fs, 0.75, 2.5) - bpm) <= tol
    assert abs(signals.rate_peaks(wave, fs) - bpm) <= 1.0
    # Raw sinusoid through the whole protocol (detrend + band-pass).
    assert abs(signals.wave_to_rate(wave, fs, "hr", diff_normalized=False) - bpm) <= tol
    # Diff-normalized sinusoid: goes through the cumsum path.
    dn = diff_normalize(wave)
    assert abs(signals.wave_to_rate(dn, fs, "hr", diff_normalized=True) - bpm) <= tol
    assert abs(signals.wave_to_rate(dn, fs, "hr", diff_normalized=True, method="peak") - bpm) <= 1.0


@pytest.mark.parametrize("fs", [25.0, 30.0])
@pytest.mark.parametrize("brpm", [9.0, 15.0, 24.0])
def test_respiration_rate_of_diff_normalized_sinusoid(fs, brpm):
    dn = diff_normalize(sinusoid(brpm, fs, 60.0))
    tol = fft_bin_per_min(dn.shape[0], fs)
    assert abs(signals.wave_to_rate(dn, fs, "rr") - brpm) <= tol
    assert abs(signals.wave_to_rate(dn, fs, "rr", method="peak") - brpm) <= 1.0


@pytest.mark.parametrize("fs", [25.0, 30.0])
def test_fine_rate_resolves_inside_one_protocol_bin(fs):
    """21 s waves 0.5 beats/min apart: the protocol's periodogram (a grid of 60 fs / nfft, 1.46-1.76 per
    minute) reads both on its grid, the 16x zero-padded one ("fine") reads each within a fine bin."""
    n = int(21 * fs)
    grid = 60.0 * fs / signals.next_power_of_2(n)
    for bpm in (73.1, 73.6, 118.3):
        dn = diff_normalize(sinusoid(bpm, fs, 21.0))
        coarse = signals.wave_to_rate(dn, fs, "hr")
        assert abs(coarse / grid - round(coarse / grid)) < 1e-9 and abs(coarse - bpm) <= grid / 2 + 1e-9
        assert abs(signals.wave_to_rate(dn, fs, "hr", method="fine") - bpm) <= grid / signals.FINE_PAD
    rates = [signals.wave_to_rate(diff_normalize(sinusoid(b, fs, 21.0)), fs, "hr", method="fine") for b in (73.1, 73.6)]
    assert 0.3 < rates[1] - rates[0] < 0.7


def test_diff_normalized_flag_integrates_first():
    # wave = sin(60/min) + 0.6 sin(140/min). Its derivative weights each tone by its frequency:
    # 60 vs 0.6 * 140 = 84, so the diff-normalized wave peaks at 140 unless it is integrated first.
    fs = 30.0
    wave = sinusoid(60.0, fs, 60.0) + 0.6 * sinusoid(140.0, fs, 60.0, phase=1.1)
    dn = diff_normalize(wave)
    tol = fft_bin_per_min(dn.shape[0], fs)
    assert abs(signals.wave_to_rate(dn, fs, "hr", diff_normalized=True) - 60.0) <= tol
    assert abs(signals.wave_to_rate(dn, fs, "hr", diff_normalized=False) - 140.0) <= tol


def test_rate_peaks_with_too_few_peaks_is_nan():
    assert math.isnan(signals.rate_peaks(np.linspace(0, 1, 50), 30.0))


def test_bad_waves_raise_user_error():
    with pytest.raises(UserError, match="NaN"):
        signals.wave_to_rate(np.array([0.0, np.nan] * 20), 30.0)
    with pytest.raises(UserError, match="at least"):
        signals.wave_to_rate(np.zeros(5), 30.0)
    with pytest.raises(UserError, match="kind"):
        signals.wave_to_rate(np.zeros(100), 30.0, kind="bp")
    with pytest.raises(UserError, match="method"):
        signals.wave_to_rate(np.zeros(100), 30.0, method="music")


# ------------------------------------------------------------------------------------------------
# SNR
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fs", [25.0, 30.0])
def test_snr_clean_sinusoid_high_noise_low(fs):
    bpm = 78.0
    wave = sinusoid(bpm, fs, 60.0)
    assert signals.snr_db(wave, bpm, fs, "hr", diff_normalized=False) > 10.0
    assert signals.snr_db(diff_normalize(wave), bpm, fs, "hr") > 10.0
    # The same clean wave scored against a wrong label rate (and its harmonic) is poor.
    assert signals.snr_db(wave, 130.0, fs, "hr", diff_normalized=False) < 0.0
    rng = np.random.default_rng(7)
    noise = [signals.snr_db(rng.standard_normal(wave.shape[0]), bpm, fs, "hr") for _ in range(5)]
    assert max(noise) < 0.0


def test_snr_is_ten_log10_of_power_ratio():
    # Two tones of equal amplitude, one at the label rate and one in the rest of the band, each
    # exactly on an FFT bin with an integer number of cycles: equal powers -> 0 dB, amplitude
    # ratio 2 -> power ratio 4 -> 10 log10(4) = 6.02 dB.
    fs, n = 32.0, 1024  # nfft = n: bins of 1/32 Hz, 1.875 per minute
    t = np.arange(n) / fs
    f_sig, f_noise = 40 / 32, 64 / 32  # 75 and 120 per minute
    for amp, expected in ((1.0, 0.0), (2.0, 10 * math.log10(4))):
        wave = amp * np.sin(2 * np.pi * f_sig * t) + np.sin(2 * np.pi * f_noise * t)
        snr = signals.snr_db(wave, 75.0, fs, "hr", process=False)
        assert snr == pytest.approx(expected, abs=1e-6)
