"""The synthetic video generator: determinism, appearance, signals in the pixels, AUs, files, CLI."""

from __future__ import annotations

import csv
import dataclasses

import cv2
import imageio
import numpy as np
import pytest

from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.errors import UserError
from bigsmall_jax.synthetic import generator as sy
from bigsmall_jax.synthetic import waveforms as wf

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


def _region_mask(name: str, vp: sy.VideoParams, size: int) -> np.ndarray:
    umin, umax, vmin, vmax = sy.AU_REGIONS[name]
    yy, xx = np.mgrid[0:size, 0:size]
    u, v = np.abs(xx - vp.cx) / vp.a, (yy - vp.cy) / vp.b
    return (u >= umin) & (u <= umax) & (v >= vmin) & (v <= vmax)


def _neutral(scene: sy.Scene, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, sy.N_DELTAS)), np.zeros((n, sy.N_FLOWS))


# ----------------------------------------------------------------------------------------------------------
# Determinism and identity.


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


def test_subject_appearance_fixed_across_videos_and_distinct_between_subjects():
    cfg = dataclasses.replace(TINY, frame_size=128)

    def face_crop(s: int, v: int) -> np.ndarray:
        # The subject layer without AUs, pulse, light or noise: crop its face box, normalise each channel.
        sp = sy.subject_params(s, cfg.seed)
        vp = sy.video_params(sp, s, v, cfg)
        scene = sy.build_scene(sp, vp, cfg.frame_size)
        frame = sy.render_frames(scene, *_neutral(scene), np.ones(1), 0.0, np.random.default_rng(0))[0]
        x, y, w, h = scene.face_box
        side = int(1.4 * w)
        x0, y0 = max(0, x + w // 2 - side // 2), max(0, y + h // 2 - side // 2)
        crop = cv2.resize(frame[y0:y0 + side, x0:x0 + side].astype(np.float32), (24, 24),
                          interpolation=cv2.INTER_AREA)
        return crop / crop.reshape(-1, 3).mean(0)

    assert sy.subject_params(3, 0) == sy.subject_params(3, 0)
    assert sy.subject_params(3, 0) != sy.subject_params(2, 0)
    assert sy.subject_params(3, 0) != sy.subject_params(3, 1)
    crops = {(s, v): face_crop(s, v) for s in range(4) for v in range(2)}
    # Re-identification: the second video of each subject is closest to the first video of the same one.
    dist = np.array([[np.abs(crops[s, 1] - crops[r, 0]).mean() for r in range(4)] for s in range(4)])
    np.testing.assert_array_equal(np.argmin(dist, axis=1), np.arange(4), err_msg=str(dist))


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


# ----------------------------------------------------------------------------------------------------------
# Physiological signals.


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


# ----------------------------------------------------------------------------------------------------------
# Action units.


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


def test_each_au_changes_pixels_mainly_inside_its_region():
    cfg = dataclasses.replace(TINY, frame_size=128)
    for s in (0, 3):
        sp = sy.subject_params(s, cfg.seed)
        vp = sy.video_params(sp, s, 0, cfg)
        scene = sy.build_scene(sp, vp, cfg.frame_size)
        n = len(AU_NAMES)
        dw, fw = np.zeros((n + 1, sy.N_DELTAS)), np.zeros((n + 1, sy.N_FLOWS))
        dw[np.arange(n), np.arange(n)] = 1.0  # frame k: AU k at full intensity; last frame: neutral
        fw[np.arange(n), np.arange(n)] = 1.0
        frames = sy.render_frames(scene, dw, fw, np.ones(n + 1), 0.0, np.random.default_rng(0)).astype(float)
        for k, name in enumerate(AU_NAMES):
            diff = np.abs(frames[k] - frames[-1]).sum(-1)
            assert diff.max() > 40 and np.sum(diff > 15) > 15, (s, name, diff.max())  # clearly visible
            inside = diff[_region_mask(name, vp, cfg.frame_size)].sum() / diff.sum()
            assert inside > 0.9, (s, name, inside)
    # Different AUs look different from each other.
    flat = frames.reshape(n + 1, -1)
    changes = flat[:n] - flat[-1]
    for a in range(n):
        for b in range(a):
            assert np.abs(changes[a] - changes[b]).sum() > 0.3 * np.abs(changes[a]).sum(), (a, b)


def test_blink_closes_the_eyes_briefly():
    track = wf.blink_track(np.random.default_rng(0), 25 * 120, 25.0, rate_hz=0.3)
    closed = track > 0.5
    starts = np.flatnonzero(np.diff(closed.astype(int)) == 1)
    assert 15 < len(starts) < 60  # ~36 blinks in 2 min
    assert closed.mean() < 0.05


# ----------------------------------------------------------------------------------------------------------
# Nuisances.


def test_compression_and_noise_change_frames_a_little():
    cfg = dataclasses.replace(TINY, duration_s=0.4)
    clean = sy.generate_recording(0, 0, dataclasses.replace(cfg, noise_std=0.0))
    noisy = sy.generate_recording(0, 0, cfg)
    jpeg = sy.generate_recording(0, 0, dataclasses.replace(cfg, compression=True, jpeg_quality=50))
    d_noise = np.abs(noisy.frames.astype(float) - clean.frames).mean()
    d_jpeg = np.abs(jpeg.frames.astype(float) - noisy.frames).mean()
    assert 0.3 < d_noise < 4.0
    assert 0.3 < d_jpeg < 6.0
    np.testing.assert_array_equal(jpeg.bvp, noisy.bvp)


def test_face_box_frames_the_face():
    for s in range(4):
        sp = sy.subject_params(s, TINY.seed)
        vp = sy.video_params(sp, s, 1, TINY)
        scene = sy.build_scene(sp, vp, TINY.frame_size)
        x, y, w, h = scene.face_box
        inner = scene.skin[y:y + h, x:x + w] > 0
        assert inner.mean() > 0.6  # mostly skin
        assert scene.skin[int(y + h / 2), int(x + w / 2)] > 0  # centred on the face
        assert abs((x + w / 2) - vp.cx) < 2 and 1.8 * vp.a < w < 2.2 * vp.a


def test_config_errors_are_user_errors():
    for bad in (dict(n_subjects=0), dict(fps=0), dict(frame_size=8), dict(noise_std=-1),
                dict(hr_range_bpm=(100.0, 50.0)), dict(jpeg_quality=0), dict(val_fraction=0.6, test_fraction=0.5)):
        with pytest.raises(UserError, match="SyntheticConfig"):
            sy.SyntheticConfig(**bad)
    with pytest.raises(UserError, match="outside"):
        sy.generate_recording(9, 0, TINY)


# ----------------------------------------------------------------------------------------------------------
# Files and command line.


def test_write_files_round_trip(tmp_path):
    rec = sy.generate_recording(2, 1, dataclasses.replace(TINY, duration_s=1.2))
    mp4, csv_path = sy.write_files(rec, tmp_path / "out")
    assert mp4.name == "S02_V1.mp4" and csv_path.name == "S02_V1.csv"
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:len(sy.CSV_COLUMNS)] == list(sy.CSV_COLUMNS)
    assert len(rows) == rec.num_frames
    np.testing.assert_allclose([float(r["bvp"]) for r in rows], rec.bvp, atol=1e-5)
    np.testing.assert_allclose([float(r["resp"]) for r in rows], rec.resp, atol=1e-5)
    np.testing.assert_allclose([float(r["hr_bpm"]) for r in rows], rec.hr_bpm, atol=1e-3)
    np.testing.assert_allclose([float(r["time_s"]) for r in rows], np.arange(rec.num_frames) / rec.fps, atol=1e-4)
    np.testing.assert_array_equal([[float(r[a]) for a in AU_NAMES] for r in rows], rec.au)
    assert tuple(int(rows[0][k]) for k in ("face_x", "face_y", "face_w", "face_h")) == rec.face_box
    frames = np.stack(list(imageio.v3.imiter(mp4, plugin="FFMPEG")))
    assert frames.shape == rec.frames.shape
    np.testing.assert_array_equal(frames, rec.frames)  # lossless
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_generic_reader_reads_written_files_back(tmp_path):
    from bigsmall_jax.datasets import readers as datasets

    rec = sy.generate_recording(0, 1, dataclasses.replace(TINY, duration_s=0.8))
    sy.write_files(rec, tmp_path)
    (back,) = list(datasets.generic_recordings(tmp_path))
    np.testing.assert_array_equal(back.frames, rec.frames)
    np.testing.assert_allclose(back.bvp, rec.bvp, atol=1e-5)
    np.testing.assert_array_equal(back.au, rec.au)
    assert back.face_box == rec.face_box


def test_cli_writes_videos_labels_and_plots(tmp_path, capsys):
    out = tmp_path / "synth"
    sy.main(["--out", str(out), "--n-subjects", "3", "--videos-per-subject", "1", "--duration", "0.6",
             "--frame-size", "64", "--set", "noise_std=1.5"])
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"S0{i}_V0.{e}" for i in range(3) for e in ("mp4", "csv")]
                           + ["contact_sheet.png", "labels.png", "splits.csv", "subjects.csv"])
    assert imageio.v3.imread(out / "contact_sheet.png").shape[0] > 100
    assert '"videos": 3' in capsys.readouterr().out
    with open(out / "subjects.csv", newline="") as f:
        assert [r["subject"] for r in csv.DictReader(f)] == ["S00", "S01", "S02"]


def test_cli_bad_setting_is_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        sy.main(["--out", str(tmp_path / "x"), "--set", "no_such_key=1"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no_such_key" in err[0]
    with pytest.raises(SystemExit) as e:
        sy.main(["--out", str(tmp_path / "y"), "--n-subjects", "0"])
    assert e.value.code == 2
    assert not (tmp_path / "y").exists()


def test_au_strength_scales_the_au_changes():
    sp = sy.subject_params(1, 0)
    vp = sy.video_params(sp, 1, 0, TINY)
    full = sy.build_scene(sp, vp, TINY.frame_size)
    none = sy.build_scene(sp, vp, TINY.frame_size, au_strength=0.0)
    half = sy.build_scene(sp, vp, TINY.frame_size, au_strength=0.5)
    n = len(AU_NAMES)
    assert np.all(none.deltas[:n] == 0) and np.all(none.flows[:n] == 0)
    np.testing.assert_allclose(half.flows[:n], 0.5 * full.flows[:n], atol=1e-5)
    np.testing.assert_array_equal(none.deltas[n:], full.deltas[n:])  # pulse and blink untouched
    np.testing.assert_array_equal(none.base, full.base)
