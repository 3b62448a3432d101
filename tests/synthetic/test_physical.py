"""The physical generator's invariants: skin optics, pulse colour and maps, beats, lighting, AU relief, seeds."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from scipy.signal import find_peaks

from bigsmall_jax import synthetic as sy
from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.synthetic import physical as ph
from bigsmall_jax.synthetic import shading, skin, waveforms
from bigsmall_jax.synthetic.config import rng

# Small, fast settings: 96-pixel frames, 1.2 s.
TINY = sy.SyntheticConfig(n_subjects=4, videos_per_subject=2, duration_s=1.2, frame_size=96, style="physical")


def _scene(subject=1, video=0, config=TINY):
    sp, ident = ph.physical_subject(subject, config.seed)
    vp = sy.video_params(sp, subject, video, config)
    light = ph.lighting(subject, video, config)
    scene = ph.build_physical_scene(sp, ident, vp, config.frame_size, 1.0, rng(0, subject, video, 8))
    return sp, ident, vp, light, scene


def _still(n: int, bvp=None, au=None, yaw=0.0) -> ph.PhysicalSignals:
    """Signals of a still head under constant light: only what the arguments set changes."""
    z = np.zeros(n)
    bvp = z if bvp is None else np.asarray(bvp, float)
    pose = np.zeros((n, 6))
    pose[:, 3] = yaw
    return ph.PhysicalSignals(bvp=bvp, dbvp=z, resp=z, hr_bpm=z + 60, rr_bpm=z + 15, beat_times_s=np.array([0.0, 1.0]),
                              au_intensity=np.zeros((n, len(AU_NAMES))) if au is None else au, blink=z, talk=z,
                              pose=pose, light=np.ones((n, 3)), camera=np.ones((n, 3)))


def _quiet(light: ph.Lighting) -> ph.Lighting:
    return dataclasses.replace(light, read_noise=0.0, shot_noise=0.0, jpeg_quality=None, flicker=0.0)


def _face(vp, size):
    yy, xx = np.mgrid[0:size, 0:size]
    u, v = (xx - vp.cx) / vp.a, (yy - vp.cy) / vp.b
    return u, v


def test_skin_optics_green_pulse_and_melanin():
    m = np.array([0.01, 0.05, 0.15, 0.28])
    refl = skin.reflectance(m, 0.012)
    assert np.all(np.diff(refl, axis=0) < 0)  # more melanin, darker in every band
    # Blue loses most to melanin: the ratio B/R falls with melanin.
    assert np.all(np.diff(refl[:, 2] / refl[:, 0]) < 0)
    direction = skin.pulse_direction(m, 0.012)
    assert np.all(direction < 0)  # more blood, darker
    assert np.all(np.argmax(-direction, axis=1) == 1)  # green pulses most
    # The analytic derivative equals a finite difference of the camera reflectance.
    eps = 1e-6
    fd = (np.log(skin.camera_rgb(skin.reflectance(m, 0.012 * (1 + eps))))
          - np.log(skin.camera_rgb(skin.reflectance(m, 0.012)))) / eps
    np.testing.assert_allclose(direction, fd, rtol=1e-4)


def test_rendered_pulse_follows_the_skin_model_and_skips_highlights():
    sp, ident, vp, light, scene = _scene()
    light = _quiet(light)
    size = TINY.frame_size
    frames = shading.render_physical(scene, _still(2, bvp=[0.0, 1.0]), light, 0.2, rng(0)).astype(float)
    u, v = _face(vp, size)
    cheeks = (np.abs(np.abs(u) - 0.45) < 0.12) & (np.abs(v - 0.2) < 0.08)
    rel = (frames[1] - frames[0])[cheeks].mean(0) / frames[0][cheeks].mean(0)
    want = 0.2 * skin.pulse_direction(ident.melanin, ident.blood) * ident.perfusion
    assert np.all(rel < 0) and np.argmax(-rel) == 1
    np.testing.assert_allclose(rel / rel[1], want / want[1], atol=0.12)  # the colour direction
    # Specular highlights carry no pulse: the pulse's change is the same with the skin's gloss off.
    matte = dataclasses.replace(scene, gloss=np.zeros_like(scene.gloss))
    frames_matte = shading.render_physical(matte, _still(2, bvp=[0.0, 1.0]), light, 0.2, rng(0)).astype(float)
    assert np.abs(frames[0] - frames_matte[0]).max() > 5  # highlights exist
    unsaturated = frames.max(axis=(0, 3)) < 250  # a saturated sensor shows no change at all
    np.testing.assert_allclose((frames[1] - frames[0])[unsaturated],
                               (frames_matte[1] - frames_matte[0])[unsaturated], atol=2.0)


def test_pulse_amplitude_and_delay_maps():
    sp, ident, vp, light, scene = _scene()
    u, v = _face(vp, TINY.frame_size)

    def at(map_, uu, vv):
        i = np.argmin((u - uu) ** 2 + (v - vv) ** 2)
        return map_.ravel()[i]

    cheek, forehead = at(scene.pulse_map, 0.45, 0.2), at(scene.pulse_map, 0.0, -0.5)
    neck = at(scene.pulse_map, 0.0, 1.25)
    assert cheek > 0.6 * ident.perfusion and forehead > 0.6 * ident.perfusion
    assert 0 < neck < min(cheek, forehead)
    assert scene.pulse_map[0, 0] == 0 and scene.pulse_map[-1, 0] == 0  # background, clothes
    assert at(scene.delay_s, 0.0, -0.6) > at(scene.delay_s, 0.0, 0.5) >= 0  # forehead after jaw
    assert 0 <= scene.delay_s.max() <= 0.04


def test_beat_times_are_the_pulse_peaks_and_vary():
    cfg = dataclasses.replace(TINY, duration_s=30.0, hr_range_bpm=(55.0, 80.0))
    sp, ident = ph.physical_subject(0, 0)
    vp = sy.video_params(sp, 0, 0, cfg)
    sig = ph.physical_signals(0, 0, cfg, vp, ph.lighting(0, 0, cfg))
    beats = sig.beat_times_s
    assert beats.dtype == np.float64 and beats.ndim == 1 and beats[0] < 0 and beats[-1] > 30.0
    t = np.arange(cfg.num_frames) / cfg.fps
    peaks, _ = find_peaks(sig.bvp, distance=int(0.4 * cfg.fps), prominence=0.3)
    inside = beats[(beats > 0.1) & (beats < t[-1] - 0.1)]
    assert len(peaks) == len(inside)
    np.testing.assert_allclose(t[peaks], inside, atol=1.01 / cfg.fps)
    ibi = np.diff(beats)
    assert 0.005 < ibi.std() / ibi.mean() < 0.15  # heart-rate variability, not a metronome
    mid = 0.5 * (beats[1:] + beats[:-1])
    np.testing.assert_allclose(np.interp(mid[1:-1], t, sig.hr_bpm), 60.0 / ibi[1:-1], rtol=0.02)


def test_hrv_respiratory_sinus_arrhythmia():
    # A constant 60 bpm with only RSA: inhaling (resp > 0) shortens the interval by rsa * resp.
    r = np.random.default_rng(0)
    beats = waveforms.beat_times(r, 60.0, lambda x: np.full_like(x, 60.0), lambda x: np.sin(2 * np.pi * x / 5.0),
                                 rsa=0.05, lf=0.0, jitter=0.0)
    ibi, resp = np.diff(beats), np.sin(2 * np.pi * beats[:-1] / 5.0)
    np.testing.assert_allclose(ibi, 1.0 - 0.05 * resp, atol=1e-9)


def test_yaw_turns_the_shading_with_the_head():
    sp, ident, vp, light, scene = _scene()
    light = dataclasses.replace(_quiet(light), key_dir=ph._unit([0.7, -0.2, 1.0]), fill_rgb=(0.0, 0.0, 0.0))
    u, v = _face(vp, TINY.frame_size)
    # Turning moves points by their depth: the nose tip more than the cheeks, the background not at all.
    yaw_flow = scene.flows[ph.FLOW_YAW, ..., 0].ravel()
    nose = yaw_flow[np.argmin(u**2 + (v - sp.nose_y) ** 2)]
    cheek = yaw_flow[np.argmin((u - 0.6) ** 2 + (v - 0.2) ** 2)]
    assert nose > cheek > 0 and yaw_flow[0] == 0
    # In the head's own frame (flows off), turned towards the key light (+x) the face brightens.
    still = dataclasses.replace(scene, flows=np.zeros_like(scene.flows))
    frames = shading.render_physical(still, _still(2, yaw=np.array([-8.0, 8.0])), light, 0.0, rng(0)).astype(float)
    centre = (np.abs(u) < 0.35) & (np.abs(v) < 0.35)
    assert frames[1][centre].mean() > frames[0][centre].mean() + 5


def test_au_shading_is_relief_under_the_lights():
    sp, ident, vp, light, scene = _scene()
    light = _quiet(light)
    au = np.zeros((2, len(AU_NAMES)))
    k = AU_NAMES.index("AU06")
    au[1, k] = 1.0
    diffs = []
    for side in (-1.0, 1.0):
        lit = dataclasses.replace(light, key_dir=ph._unit([side * 0.8, -0.3, 1.0]))
        f = shading.render_physical(scene, _still(2, au=au), lit, 0.0, rng(0)).astype(float)
        diffs.append(f[1] - f[0])
    assert np.abs(diffs[0]).max() > 20  # AU06 shows
    # Relief, not paint: the change depends on where the light comes from.
    assert np.abs(diffs[0] - diffs[1]).sum() > 0.2 * np.abs(diffs[0]).sum()
    # Lip corners move out and up under AU12 (its displacement field).
    j = AU_NAMES.index("AU12")
    u, v = _face(vp, TINY.frame_size)
    for s in (-1.0, 1.0):
        corner = np.argmin((u - s * sp.mouth_w) ** 2 + (v - sp.mouth_y) ** 2)
        dx, dy = scene.flows[j].reshape(-1, 2)[corner]
        assert dx * s > 0.5 and dy < -0.5


@pytest.mark.parametrize("subject", [0, 2])
def test_recordings_are_deterministic_by_seed(subject):
    a = sy.generate_recording(subject, 1, TINY)
    b = sy.generate_recording(subject, 1, TINY)
    c = sy.generate_recording(subject, 1, dataclasses.replace(TINY, seed=1))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.extra["beat_times_s"], b.extra["beat_times_s"])
    assert np.abs(a.frames.astype(float) - c.frames).mean() > 5
    assert a.frames.shape == (TINY.num_frames, 96, 96, 3) and a.frames.dtype == np.uint8
    assert a.au.shape == (TINY.num_frames, 12) and a.face_box is not None


def test_flicker_aliases_to_the_frame_rate():
    assert waveforms.flicker_hz(50.0, 25.0) == 0.0
    assert waveforms.flicker_hz(50.0, 30.0) == 10.0
    assert waveforms.flicker_hz(60.0, 25.0) == 5.0


def test_vary_format_draws_frame_rate_and_size_per_video():
    cfg = dataclasses.replace(TINY, vary_format=True, n_subjects=12)
    formats = {(c.fps, c.frame_size) for c in (ph.video_format(s, v, cfg) for s in range(12) for v in range(2))}
    fps, sizes = {f for f, _ in formats}, [s for _, s in formats]
    assert fps == {25.0, 30.0} and min(sizes) >= 160 and max(sizes) <= 720 and max(sizes) > 2 * min(sizes)
    assert ph.video_format(0, 0, TINY) is TINY


def test_recordings_are_lossless_or_high_quality_jpeg():
    q = [ph.lighting(s, v, TINY).jpeg_quality for s in range(100) for v in range(2)]
    lossless = np.mean([x is None for x in q])
    assert abs(lossless - ph.LOSSLESS_SHARE) < 0.1
    lo, hi = ph.JPEG_QUALITY
    assert all(lo <= x < hi for x in q if x is not None)


def test_sensor_noise_is_binned_in_frames_smaller_than_the_sensor():
    """A frame of SENSOR_PX / k pixels is a k x k binned capture: the mean of k^2 sensor pixels has 1/k of the
    read-noise std and 1/k^2 of the shot-noise variance per grey level, so noise over the face does not
    depend on the frame size; frames of SENSOR_PX or more keep the sensor's noise. Nothing else changes."""
    for subject, video in ((0, 0), (3, 1)):
        sensor = ph.lighting(subject, video, dataclasses.replace(TINY, frame_size=ph.SENSOR_PX))
        assert ph.lighting(subject, video, dataclasses.replace(TINY, frame_size=720)) == sensor
        for k in (2, 3, 5):
            small = ph.lighting(subject, video, dataclasses.replace(TINY, frame_size=ph.SENSOR_PX // k))
            assert small.read_noise == pytest.approx(sensor.read_noise / k)
            assert small.shot_noise == pytest.approx(sensor.shot_noise / k ** 2)
            assert dataclasses.replace(small, read_noise=sensor.read_noise, shot_noise=sensor.shot_noise) == sensor


def test_frames_above_the_detail_size_are_the_lit_scene_resized(monkeypatch):
    """A frame of twice `DETAIL_SIZE` is the scene lit at DETAIL_SIZE, resized: area-averaged back down it
    matches the DETAIL_SIZE frame (no noise, lossless), and its face box is twice as large."""
    monkeypatch.setattr(ph, "LOSSLESS_SHARE", 1.0)
    small = dataclasses.replace(TINY, frame_size=ph.DETAIL_SIZE, nuisance=0.0, duration_s=0.4)
    big = dataclasses.replace(small, frame_size=2 * ph.DETAIL_SIZE)
    a, b = ph.generate_physical(1, 0, small), ph.generate_physical(1, 0, big)
    assert b.frames.shape[1:3] == (2 * ph.DETAIL_SIZE,) * 2
    assert np.all(np.abs(np.array(b.face_box) - 2 * np.array(a.face_box)) <= 1)
    down = np.stack([cv2.resize(f, a.frames.shape[1:3], interpolation=cv2.INTER_AREA) for f in b.frames])
    diff = down.astype(float) - a.frames
    x, y, w, h = a.face_box
    face = diff[:, y:y + h, x:x + w]
    # Bilinear up then area down blurs edges by about a pixel: the face's mean colour is unchanged and
    # most pixels differ by at most one grey level.
    assert np.abs(face.mean(axis=(0, 1, 2))).max() < 0.5
    assert np.median(np.abs(face)) <= 1.0 and np.abs(diff).mean() < 2.5


def test_fidgeting_moves_the_head_inside_the_pulse_band():
    cfg = dataclasses.replace(TINY, duration_s=60.0)
    moves = ph.fidget(1, 0, cfg)
    assert moves.shape == (cfg.num_frames, 5)
    power = np.abs(np.fft.rfft(moves, axis=0)) ** 2
    f = np.fft.rfftfreq(cfg.num_frames, 1 / cfg.fps)
    lo, hi = ph.FIDGET_BAND_HZ
    assert power[(f < lo) | (f > hi)].sum() < 0.1 * power.sum()  # the slow bursts leak a little
    rms = np.sqrt(np.mean(moves**2, axis=0))
    scale = np.array(ph.FIDGET_RMS) * np.array([cfg.frame_size / 160, cfg.frame_size / 160, 1, 1, 1])
    assert np.all(rms <= scale) and np.all(rms >= 0.1 * scale)
    assert not ph.fidget(1, 0, dataclasses.replace(cfg, nuisance=0.0)).any()
    assert not np.allclose(moves, ph.fidget(2, 0, cfg))
