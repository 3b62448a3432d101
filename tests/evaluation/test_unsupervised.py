"""POS / CHROM / GREEN: the pulse frequency of a synthetic skin-colour trace, invariances, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from bigsmall_jax.errors import UserError
from bigsmall_jax.evaluation import unsupervised as us

FPS = 30.0


def synthetic_trace(f_pulse=1.3, seconds=20.0, fps=FPS, noise=0.2, seed=0):
    """(T, 3) mean skin colour: skin tone x (1 + slow illumination drift) x (1 + small pulse) + sensor noise.

    The pulse modulates the channels in the blood-volume direction (strongest in green), 0.3 % in green,
    while the illumination drifts by 20 % over the recording - 60x the pulse - at 0.05 Hz.
    """
    t = np.arange(int(seconds * fps)) / fps
    skin = np.array([180.0, 130.0, 110.0])
    pbv = np.array([0.33, 0.77, 0.53]) / 0.77 * 3e-3
    pulse = np.sin(2 * np.pi * f_pulse * t)
    drift = 1.0 + 0.2 * np.sin(2 * np.pi * 0.05 * t)
    rng = np.random.default_rng(seed)
    return skin * drift[:, None] * (1.0 - pbv * pulse[:, None]) + noise * rng.normal(size=(t.size, 3))


def peak_frequency(wave, fps=FPS):
    f, p = signal.periodogram(wave, fs=fps, nfft=8192, detrend=False)
    return f[np.argmax(p)]


@pytest.mark.parametrize("method", ["pos", "chrom", "green"])
@pytest.mark.parametrize("f_pulse", [1.0, 1.7])
def test_spectral_peak_at_pulse_frequency(method, f_pulse):
    rgb = synthetic_trace(f_pulse)
    wave = us.METHODS[method](rgb, FPS)
    assert wave.shape == (rgb.shape[0],) and np.all(np.isfinite(wave))
    assert abs(peak_frequency(wave) - f_pulse) < 0.05  # resolution of 20 s is 0.05 Hz


def test_raw_green_without_band_pass_is_dominated_by_drift():
    """Sanity check of the trace: the illumination drift, not the pulse, dominates the raw channels."""
    rgb = synthetic_trace(1.3)
    assert peak_frequency(rgb[:, 1] - rgb[:, 1].mean()) < 0.2


def test_pos_follows_the_pulse_in_time():
    rgb = synthetic_trace(1.2, noise=0.0)
    t = np.arange(rgb.shape[0]) / FPS
    wave = us.pos(rgb, FPS)
    truth = np.sin(2 * np.pi * 1.2 * t)
    inner = slice(60, -60)  # away from the edges, where fewer windows overlap
    corr = np.corrcoef(wave[inner], truth[inner])[0, 1]
    assert abs(corr) > 0.95


@pytest.mark.parametrize("method", ["pos", "chrom"])
def test_invariant_to_global_intensity_scale(method):
    rgb = synthetic_trace(1.3)
    f = us.METHODS[method]
    np.testing.assert_allclose(f(rgb * 3.7, FPS), f(rgb, FPS), rtol=1e-9, atol=1e-12)


def test_pos_invariant_to_per_channel_gain():
    """Temporal normalization divides out each channel's gain (a different camera white balance)."""
    rgb = synthetic_trace(1.3)
    np.testing.assert_allclose(us.pos(rgb * [0.8, 1.3, 2.0], FPS), us.pos(rgb, FPS), rtol=1e-9, atol=1e-12)


def test_pos_plain_loop_small_case():
    """POS on a tiny trace equals a direct transcription of the paper's Algorithm 1."""
    rgb = synthetic_trace(1.3, seconds=1.0, fps=10.0)  # T = 10, window ceil(1.6 * 10) = 16 -> whole trace
    rgb = np.concatenate([rgb, synthetic_trace(1.3, seconds=1.0, fps=10.0, seed=1)])  # T = 20
    t, win = 20, 16
    expected = np.zeros(t)
    for n in range(win - 1, t):
        m = n - win + 1
        c = rgb[m : n + 1]
        cn = c / c.mean(axis=0)
        s1 = cn[:, 1] - cn[:, 2]
        s2 = -2 * cn[:, 0] + cn[:, 1] + cn[:, 2]
        h = s1 + s1.std() / s2.std() * s2
        expected[m : n + 1] += h - h.mean()
    np.testing.assert_allclose(us.pos(rgb, 10.0), expected, rtol=1e-10, atol=1e-14)


def test_spatial_means():
    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    expected = np.array([[frames[t, :, :, c].astype(float).sum() / 20 for c in range(3)] for t in range(3)])
    np.testing.assert_allclose(us.spatial_means(frames), expected, rtol=1e-12)
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:4] = True
    np.testing.assert_allclose(us.spatial_means(frames, mask), frames[:, 1:3, 2:4].mean(axis=(1, 2)), rtol=1e-12)
    with pytest.raises(UserError, match="mask is empty"):
        us.spatial_means(frames, np.zeros((4, 5), bool))


def test_envelope_normalize_flattens_amplitude():
    t = np.arange(600) / FPS
    wave = (1.0 + 0.8 * np.sin(2 * np.pi * 0.1 * t)) * np.sin(2 * np.pi * 1.5 * t)
    out = us.envelope_normalize(wave, FPS)
    peaks = out[signal.find_peaks(out)[0]][3:-3]
    assert peaks.std() / peaks.mean() < 0.1
    raw_peaks = wave[signal.find_peaks(wave)[0]][3:-3]
    assert raw_peaks.std() / raw_peaks.mean() > 0.3


@pytest.mark.parametrize(
    ("rgb", "fps", "pattern"),
    [
        (np.ones((10, 2)), FPS, r"\(T, 3\)"),
        (np.ones((1, 3)), FPS, r"T >= 2"),
        (np.full((10, 3), np.nan), FPS, "NaN"),
        (np.ones((10, 3)), 0.0, "frame rate"),
    ],
)
@pytest.mark.parametrize("method", ["pos", "chrom", "green"])
def test_bad_input(method, rgb, fps, pattern):
    with pytest.raises(UserError, match=pattern):
        us.METHODS[method](rgb, fps)
