"""Synthetic recordings: determinism, identity, splits, and the pulse and breathing in the pixels."""

from __future__ import annotations

import dataclasses

import numpy as np

from bigsmall_jax import synthetic as sy
from bigsmall_jax.datasets.recording import AU_NAMES

# Small, fast settings: 96-pixel frames.
TINY = sy.SyntheticConfig(n_subjects=4, videos_per_subject=2, duration_s=2.0, frame_size=96)


def _spectral_peak(x: np.ndarray, fs: float, lo_hz: float, hi_hz: float, pad: int = 16) -> tuple[float, float]:
    """(peak frequency in Hz within [lo, hi], unpadded bin width in Hz) of a mean-removed, Hann-windowed x."""
    x = np.asarray(x, np.float64)
    x = (x - x.mean()) * np.hanning(len(x))
    n = pad * len(x)
    f = np.fft.rfftfreq(n, 1.0 / fs)
    p = np.abs(np.fft.rfft(x, n)) ** 2
    band = (f >= lo_hz) & (f <= hi_hz)
    return float(f[band][np.argmax(p[band])]), fs / len(x)


def test_generate_is_deterministic_by_seed():
    a = sy.generate_recording(1, 1, TINY)
    b = sy.generate_recording(1, 1, TINY)
    assert a.name == "S01_V1" and a.subject == "S01"
    np.testing.assert_array_equal(a.frames, b.frames)
    for field in ("bvp", "resp", "au", "hr_bpm", "rr_bpm"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.face_box == b.face_box
    c = sy.generate_recording(1, 1, dataclasses.replace(TINY, seed=7))
    assert not np.array_equal(a.frames, c.frames)
    assert not np.allclose(a.bvp, c.bvp)
    d = sy.generate_recording(1, 0, TINY)  # another video of the same subject differs too
    assert not np.allclose(a.bvp, d.bvp)


def test_recording_shapes_and_label_types():
    rec = sy.generate_recording(0, 0, TINY)
    t = TINY.num_frames
    assert rec.frames.shape == (t, 96, 96, 3) and rec.frames.dtype == np.uint8
    assert rec.fps == TINY.fps
    for field in ("bvp", "resp", "hr_bpm", "rr_bpm"):
        assert getattr(rec, field).shape == (t,) and np.all(np.isfinite(getattr(rec, field)))
    assert rec.au.shape == (t, len(AU_NAMES)) and rec.au.dtype == np.float32
    assert set(np.unique(rec.au)) <= {0.0, 1.0}
    x, y, w, h = rec.face_box
    assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96 and w == h > 20


def test_subject_splits_are_disjoint_deterministic_and_cover_all_subjects():
    cfg = sy.SyntheticConfig()
    splits = sy.subject_splits(cfg)
    assert splits == sy.subject_splits(cfg)
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [8, 2, 2]
    everyone = [s for k in splits for s in splits[k]]
    assert sorted(everyone) == [sy.subject_id(i) for i in range(cfg.n_subjects)]
    assert sy.subject_splits(dataclasses.replace(cfg, seed=1)) != splits
    one = sy.subject_splits(dataclasses.replace(cfg, n_subjects=1))
    assert one == {"train": ["S00"], "validation": [], "test": []}
    names = [r.name for r in sy.iter_recordings(dataclasses.replace(TINY, duration_s=0.2), subjects=["S02"])]
    assert names == ["S02_V0", "S02_V1"]


def test_rates_in_range_and_wave_spectral_peaks_match_labels():
    cfg = sy.SyntheticConfig(duration_s=60.0)
    for drift in (True, False):
        c = cfg if drift else dataclasses.replace(cfg, hr_drift_bpm=0.0, rr_drift_bpm=0.0)
        for s in range(6):
            sig = sy.video_signals(s, 0, c)
            assert 45.0 <= sig.hr_bpm.min() and sig.hr_bpm.max() <= 150.0
            assert 6.0 <= sig.rr_bpm.min() and sig.rr_bpm.max() <= 30.0
            if not drift:
                assert np.ptp(sig.hr_bpm) < 1e-9 and np.ptp(sig.rr_bpm) < 1e-9
            hr_hz, bin_hz = _spectral_peak(sig.bvp, c.fps, 0.7, 2.6)
            assert abs(60 * hr_hz - sig.hr_bpm.mean()) <= 60 * bin_hz, (s, 60 * hr_hz, sig.hr_bpm.mean())
            rr_hz, bin_hz = _spectral_peak(sig.resp, c.fps, 0.08, 0.55)
            assert abs(60 * rr_hz - sig.rr_bpm.mean()) <= 60 * bin_hz, (s, 60 * rr_hz, sig.rr_bpm.mean())


def test_pixels_carry_the_pulse_and_the_breathing():
    cfg = sy.SyntheticConfig(duration_s=20.0, frame_size=96)
    for s in (0, 5):
        rec = sy.generate_recording(s, 0, cfg)
        x, y, w, h = rec.face_box
        green = rec.frames[:, y:y + h, x:x + w, 1].reshape(rec.num_frames, -1).mean(1)
        hr_hz, bin_hz = _spectral_peak(green, rec.fps, 0.75, 2.5)
        assert abs(60 * hr_hz - rec.hr_bpm.mean()) <= 60 * bin_hz, (s, 60 * hr_hz, rec.hr_bpm.mean())
        # The pulse darkens the skin (more blood, more absorption): green anticorrelates with the PPG.
        k = int(rec.fps)
        hp = green - np.convolve(green, np.ones(k) / k, "same")
        bp = rec.bvp - np.convolve(rec.bvp, np.ones(k) / k, "same")
        assert np.corrcoef(hp[k:-k], bp[k:-k])[0, 1] < -0.3
        # Breathing moves the body vertically: the global vertical shift estimated from the lower frame
        # (neck and shoulders) by least squares on the image gradient peaks at the breathing rate.
        f = rec.frames[:, int(0.7 * 96):, :, :].mean(-1).astype(np.float64)
        ref = f.mean(0)
        gy = np.gradient(ref, axis=0)
        shift = -np.einsum("tij,ij->t", f - ref, gy) / np.sum(gy**2)
        rr_hz, bin_hz = _spectral_peak(shift, rec.fps, 0.08, 0.55)
        assert abs(60 * rr_hz - rec.rr_bpm.mean()) <= 60 * bin_hz, (s, 60 * rr_hz, rec.rr_bpm.mean())
