"""The physical generator (``SyntheticConfig.style = "physical"``): lit 3D faces, pulse in the skin, real nuisances.

What differs from the classic look (`scene`, `render`):

* Appearance: albedo (unlit colours) painted by the classic drawing steps, lit per frame from the 3D
  depth map of `head` (head ellipsoid with relief, neck, torso) by a key and a fill light plus ambient
  light: Lambert shading that moves with the head (yaw, pitch and roll turn the normals against the
  lights) and Blinn-Phong highlights in the light's colour (they carry no pulse). Skin colour comes from
  melanin and blood (`skin`); fine skin texture; glasses and beards; a cluttered room background.
* Physiology: the pulse is a relative change of the dermal blood volume; its RGB direction is
  `skin.pulse_direction`. Its amplitude map is the classic skin weight (forehead and cheeks strongest,
  nose, lips, ears and neck weaker, none under beards); a pulse-transit delay map (forehead 0-40 ms after
  the jaw) enters as the first-order term -tau(x) * dp/dt. Beats carry heart-rate variability
  (`waveforms.beat_times`, recorded as ``beat_times_s``), head motion carries a ballistocardiographic
  jolt at every beat, respiration moves chest, shoulders and head and modulates the pulse amplitude.
* AUs: the classic displacement fields; their shading becomes relief (normal changes lit by the
  lights) and cavity occlusion, not painted strokes.
* Nuisances: head translation, roll, yaw and pitch, fidgeting (`fidget`), talking (jaw and a dark mouth
  opening), light level drift and steps, light colour drift, mains flicker aliased to the frame rate,
  auto-exposure and auto white balance that lag behind, shot and read noise (binned in frames smaller than
  the sensor, `SENSOR_PX`), per-video JPEG compression.

`shading.render_physical` turns the scene and signals into frames (a few matrix products, the shading of
two lights, one `cv2.remap`, noise and a JPEG round trip per frame); everything else is precomputed per
video.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bigsmall_jax.datasets.recording import AU_NAMES, Recording
from bigsmall_jax.synthetic import head, skin, waveforms
from bigsmall_jax.synthetic.appearance import subject_params, video_params
from bigsmall_jax.synthetic.aus import AuInputs, draw_aus
from bigsmall_jax.synthetic.config import REFERENCE_SIZE, SubjectParams, SyntheticConfig, VideoParams, rng
from bigsmall_jax.synthetic.drawing import Canvas, coverage, ellipse_sd, face_grid, sample, smooth_texture
from bigsmall_jax.synthetic.recordings import synthetic_recording
from bigsmall_jax.synthetic.scene import FaceLook, blink_delta, body_flows, face_box, paint_subject
from bigsmall_jax.synthetic.shading import render_physical

N_AU = len(AU_NAMES)
# Albedo deltas: 12 AUs (recolours), pulse, pulse delay term, blink, open mouth (talking).
ALBEDO_PULSE, ALBEDO_DELAY, ALBEDO_BLINK, ALBEDO_MOUTH = N_AU, N_AU + 1, N_AU + 2, N_AU + 3
N_ALBEDO = N_AU + 4
# Flows: 12 AUs, respiration, head x, head y (pixels), roll, yaw, pitch (degrees), jaw (talking).
FLOW_RESP, FLOW_X, FLOW_Y, FLOW_ROLL, FLOW_YAW, FLOW_PITCH, FLOW_JAW = range(N_AU, N_AU + 7)
N_FLOW = N_AU + 7
RELIEF_DEPTH = 0.02  # face half-widths of relief per unit of AU relative shading
# Recordings: research datasets store frames losslessly or as high-quality JPEG; a compressed video's
# per-frame JPEG quality is drawn in [lo, hi).
LOSSLESS_SHARE = 0.4
JPEG_QUALITY = (75, 96)
RELIEF_FLOOR = 1e-4  # smallest normal or cavity change per unit AU that is kept
# Frames larger than this are lit at this size and resized before the camera's noise and JPEG: the model
# reads a 144-pixel crop of 1.5 face boxes, which a 320-pixel rendering already resolves, and the cost of
# lighting grows with the square of the size (a 720-pixel frame: 20x a 160-pixel one).
DETAIL_SIZE = 320
# Sensor noise is set for a sensor of this many pixels across (a VGA webcam's 480 rows, the smallest in use):
# a smaller frame is a binned or downscaled capture, each pixel the mean of (SENSOR_PX / size)^2 sensor
# pixels, so the noise on the face as a whole does not depend on the frame size.
SENSOR_PX = 480


@dataclasses.dataclass(frozen=True)
class Identity:
    """What the physical generator adds to a subject's classic `SubjectParams` (fixed per subject).

    Attributes:
      melanin, blood: epidermal melanin and dermal blood volume fractions (`skin`).
      perfusion: relative pulse strength. oiliness: specular strength of the skin (0.02-0.12).
      glasses: whether the subject wears glasses. beard: beard density in [0, 1] (0: none).
    """

    melanin: float
    blood: float
    perfusion: float
    oiliness: float
    glasses: bool
    beard: float


def melanin_of(skin_rgb) -> float:
    """The melanin fraction whose skin (`skin.skin_rgb` at mid blood) has the green level of `skin_rgb`:
    a subject keeps its classic skin tone."""
    grid = np.linspace(*skin.MELANIN_RANGE, 200)
    green = skin.skin_rgb(grid, float(np.mean(skin.BLOOD_RANGE)))[:, 1]  # falls with melanin
    return float(np.interp(-float(skin_rgb[1]), -green, grid))


def identity(subject_index: int, seed: int) -> Identity:
    """The physical identity of a subject: melanin from its classic skin tone, the rest from its own random
    stream (so the classic parameters are unchanged)."""
    r = rng(seed, subject_index, 6)
    classic = subject_params(subject_index, seed)
    return Identity(melanin=melanin_of(classic.skin_rgb),
                    blood=float(r.uniform(*skin.BLOOD_RANGE)), perfusion=float(r.uniform(0.7, 1.3)),
                    oiliness=float(r.uniform(0.02, 0.12)), glasses=bool(r.uniform() < 0.25),
                    beard=float(r.uniform(0.4, 1.0)) if r.uniform() < 0.2 else 0.0)


def physical_subject(subject_index: int, seed: int) -> tuple[SubjectParams, Identity]:
    """The classic subject with skin, lip and brow colours from its melanin and blood."""
    sp, ident = subject_params(subject_index, seed), identity(subject_index, seed)
    skin_rgb = skin.skin_rgb(ident.melanin, ident.blood)
    lip = skin_rgb * np.array([0.86, 0.6, 0.62])
    brow = np.minimum(0.45 * np.asarray(sp.hair_rgb) + 0.55 * 0.42 * skin_rgb, 0.55 * skin_rgb)
    t3 = lambda x: tuple(float(v) for v in np.clip(x, 0, 255))  # noqa: E731
    return dataclasses.replace(sp, skin_rgb=t3(skin_rgb), lip_rgb=t3(lip), brow_rgb=t3(brow)), ident


@dataclasses.dataclass(frozen=True)
class Lighting:
    """Lights and camera of one video (light directions in image axes towards the light, z to the camera).

    Attributes:
      key_dir, fill_dir: unit directions. key_rgb, fill_rgb, ambient_rgb: light colours x levels (unit: a
        perfect white diffuser facing the key light at level 1 renders at 255 before the camera gain).
      shininess: Blinn-Phong exponent of the skin, a power of two (8, 16 or 32).
      exposure: camera gain target (grey levels per unit).
      exposure_lag_s, wb_lag_s: time constants of auto-exposure and auto white balance.
      flicker_hz, flicker: aliased mains flicker frequency (Hz) and relative depth.
      read_noise, shot_noise: sensor noise of a frame pixel: std = sqrt(read^2 + shot * level) grey levels
        (a sensor pixel's, divided by the binning of a frame smaller than `SENSOR_PX`).
      jpeg_quality: per-frame JPEG quality (None: no compression).
    """

    key_dir: tuple[float, float, float]
    fill_dir: tuple[float, float, float]
    key_rgb: tuple[float, float, float]
    fill_rgb: tuple[float, float, float]
    ambient_rgb: tuple[float, float, float]
    shininess: int
    exposure: float
    exposure_lag_s: float
    wb_lag_s: float
    flicker_hz: float
    flicker: float
    read_noise: float
    shot_noise: float
    jpeg_quality: int | None


def _unit(v) -> tuple[float, float, float]:
    v = np.asarray(v, np.float64)
    return tuple(float(x) for x in v / np.linalg.norm(v))  # type: ignore[return-value]


def lighting(subject_index: int, video_index: int, config: SyntheticConfig) -> Lighting:
    """The lights and camera of one video (stream 7)."""
    r = rng(config.seed, subject_index, video_index, 7)
    k = config.nuisance
    warm = r.uniform(-1, 1)  # warm (tungsten) .. cool (daylight) key light
    key_rgb = np.array([1.0 + 0.12 * warm, 1.0, 1.0 - 0.15 * warm]) * r.uniform(0.6, 0.85)
    fill_rgb = np.array([1.0, 1.0, 1.0]) + r.uniform(-0.08, 0.08, 3)
    side = r.choice([-1.0, 1.0])
    binning = max(1.0, SENSOR_PX / float(config.frame_size))  # sensor pixels per frame pixel, across
    return Lighting(
        key_dir=_unit([side * r.uniform(0.2, 0.9), r.uniform(-0.6, -0.05), 1.0]),
        fill_dir=_unit([-side * r.uniform(0.3, 1.0), r.uniform(-0.3, 0.3), 1.0]),
        key_rgb=tuple(key_rgb), fill_rgb=tuple(fill_rgb * r.uniform(0.1, 0.3)),  # type: ignore[arg-type]
        ambient_rgb=tuple(np.array([1.0, 1.0, 1.0]) * r.uniform(0.15, 0.3)),  # type: ignore[arg-type]
        shininess=int(r.choice([8, 16, 32])), exposure=float(r.uniform(0.9, 1.15)),
        exposure_lag_s=float(r.uniform(0.5, 2.0)), wb_lag_s=float(r.uniform(2.0, 6.0)),
        flicker_hz=waveforms.flicker_hz(float(r.choice([50.0, 60.0])), config.fps),
        flicker=float(k * r.uniform(0.0, 0.01)),
        read_noise=float(k * r.uniform(1.0, 2.5) / binning),
        shot_noise=float(k * r.uniform(0.01, 0.05) / binning ** 2),
        jpeg_quality=None if r.uniform() < LOSSLESS_SHARE else int(r.integers(*JPEG_QUALITY)),
    )


@dataclasses.dataclass
class PhysicalScene:
    """Everything precomputed to render one video (S = frame size), in the head's rest pose.

    Attributes:
      albedo: (S, S, 3) float32 premultiplied albedo (grey levels of a surface facing a unit light).
      alpha: (S, S) float32 coverage of the subject. normals: (S, S, 3) float32 unit normals.
      cavity: (S, S) float32 ambient occlusion (1: open). gloss: (S, S) float32 specular strength.
      albedo_deltas: (N_ALBEDO, S, S, 3) float32 albedo change per unit weight (AUs, pulse, pulse delay
        per second of -dp/dt, blink, open mouth).
      relief_deltas: (N_AU, S, S, 4) float32 normal change (3) and cavity change (1) per unit AU.
      flows: (N_FLOW, S, S, 2) float32 displacement (dx, dy) in pixels per unit weight.
      background: (S, S, 3) float32 room under unit light. pulse_map: (S, S) pulse amplitude weight.
      delay_s: (S, S) pulse-transit delay (s). face_box: (x, y, w, h).
    """

    albedo: np.ndarray
    alpha: np.ndarray
    normals: np.ndarray
    cavity: np.ndarray
    gloss: np.ndarray
    albedo_deltas: np.ndarray
    relief_deltas: np.ndarray
    flows: np.ndarray
    background: np.ndarray
    pulse_map: np.ndarray
    delay_s: np.ndarray
    face_box: tuple[int, int, int, int]


def _neutral_look(sp: SubjectParams, ident: Identity, grid, size: int) -> FaceLook:
    """The unlit look of the face: skin albedo with pore-scale and blotchy texture and blush."""
    u, v = grid.u, grid.v
    taper = 1.0 - sp.chin_taper * np.clip(v, 0.0, 1.0) ** 2
    coarse = sample(smooth_texture(sp.texture_seed, (96, 96), 1.2), u, v, 1.6)
    fine = sample(smooth_texture(sp.texture_seed + 7, (384, 384), 0.8), u, v, 1.6)
    texture = 0.6 * coarse + 0.4 * fine
    blush = grid.gauss(-0.45, 0.2, 0.2, 0.15) + grid.gauss(0.45, 0.2, 0.2, 0.15)
    redder = skin.skin_rgb(ident.melanin, ident.blood * 1.4) / skin.skin_rgb(ident.melanin, ident.blood)
    face_rgb = (np.asarray(sp.skin_rgb) * (1.0 + 0.05 * texture)[..., None]
                * (1.0 + 0.5 * blush[..., None] * (redder - 1.0)))
    ones = np.ones_like(u)
    return FaceLook(un=u / taper, lambert=0.75 * ones, shade=ones, texture=texture, blush=blush, face_rgb=face_rgb)


def _paint_beard(canvas: Canvas, sp: SubjectParams, ident: Identity, grid, look: FaceLook) -> np.ndarray:
    """Paints a beard over jaw, chin and upper lip (density `ident.beard`); returns its (S, S) coverage."""
    u, v = grid.u, grid.v
    region = np.clip((v - (sp.nose_y + 0.05)) / 0.1, 0, 1) * np.clip((np.sqrt(look.un**2 + v**2) - 0.55) / 0.2, 0, 1)
    region = np.maximum(region, np.clip((v - sp.mouth_y - 0.12) / 0.08, 0, 1) * (np.abs(u) < 0.9))
    moustache = grid.gauss(0.0, sp.mouth_y - sp.upper_lip - 0.04, 0.3, 0.035)
    stubble = 0.6 + 0.4 * np.clip(look.texture * 3 + 0.5, 0, 1)
    on_face = np.clip((1.0 - np.sqrt(look.un**2 + v**2)) * grid.b + 0.5, 0.0, 1.0)  # inside the face outline
    cov = np.clip(ident.beard * np.maximum(region, moustache) * stubble, 0, 1) * on_face
    canvas.paint(np.asarray(sp.hair_rgb) * 0.9, cov)
    return cov


def _paint_glasses(canvas: Canvas, sp: SubjectParams, grid) -> np.ndarray:
    """Paints glasses (rims, bridge; lenses tint lightly); returns the (S, S) lens coverage (glossy)."""
    lenses = np.zeros_like(grid.u)
    rim_rgb = np.array([30.0, 28.0, 30.0])
    for s in (-1.0, 1.0):
        sd = ellipse_sd(grid.xx, grid.yy, grid.cx + s * sp.eye_dx * grid.a, grid.cy + (sp.eye_y + 0.02) * grid.b,
                        1.35 * sp.eye_w * grid.a, 0.13 * grid.b, power=3.0)
        canvas.paint(rim_rgb, coverage(np.abs(sd) - 0.5 - 0.006 * grid.a))
        lens = coverage(sd)
        canvas.rgb *= (1.0 - 0.08 * lens)[..., None]
        lenses = np.maximum(lenses, lens)
    bridge = (coverage(np.abs(grid.v - sp.eye_y + 0.03) * grid.b - 0.012 * grid.a)
              * (np.abs(grid.u) < sp.eye_dx - 1.3 * sp.eye_w))
    canvas.paint(rim_rgb, bridge)
    return lenses


def build_physical_scene(sp: SubjectParams, ident: Identity, vp: VideoParams, frame_size: int,
                         au_strength: float, r: np.random.Generator) -> PhysicalScene:
    """Paints the albedo, builds the 3D shape, the AU reliefs, the pulse maps and the background."""
    size = int(frame_size)
    grid = face_grid(vp, size)
    look = _neutral_look(sp, ident, grid, size)
    flat = dataclasses.replace(vp, light_dir=(0.0, 0.0, 1.0))
    canvas = Canvas(size)
    eye_open, lips, mouth_v = paint_subject(canvas, sp, flat, grid, look)
    beard = _paint_beard(canvas, sp, ident, grid, look) if ident.beard > 0 else np.zeros_like(grid.u)
    base_no_glasses = canvas.rgb.copy()
    lenses = _paint_glasses(canvas, sp, grid) if ident.glasses else np.zeros_like(grid.u)
    albedo, alpha = canvas.rgb, canvas.alpha

    z, head_w = head.body_depth(sp, grid)
    normals = head.normals(z)
    u, v = grid.u, grid.v
    face_skin = (canvas.skin > 0) * (1.0 - beard) * (1.0 - lenses)
    t_zone = grid.gauss(0, -0.55, 0.45, 0.2) + grid.gauss(0, sp.nose_y, 0.1, 0.15)  # oily forehead and nose
    gloss = ident.oiliness * face_skin * (0.6 + 0.8 * t_zone)
    gloss = gloss + 0.3 * lips * (1 - beard) + 0.5 * eye_open + 0.6 * lenses
    cavity = np.ones_like(u)

    # AUs: recolours into the albedo deltas, relative shading into relief.
    albedo_deltas = np.zeros((N_ALBEDO, size, size, 3))
    flows = np.zeros((N_FLOW, size, size, 2))
    reliefs = np.zeros((N_AU, size, size))
    au_in = AuInputs(grid=grid, subject=sp, base=albedo, skin_rgb=look.face_rgb * 0.97,
                     shading=np.ones_like(u), lips=lips, mouth_v=mouth_v)
    draw_aus(albedo_deltas, flows, au_in, strength=au_strength, reliefs=reliefs)
    relief_deltas = np.zeros((N_AU, size, size, 4))
    for k in range(N_AU):
        relief_deltas[k, ..., :3] = head.relief_normals(RELIEF_DEPTH * grid.a * reliefs[k])
        relief_deltas[k, ..., 3] = reliefs[k]
    # Tails below RELIEF_FLOOR change a pixel by < 0.03 grey levels; zeroed, the relief's box (and per-frame
    # work) shrinks to the face.
    relief_deltas[np.abs(relief_deltas) < RELIEF_FLOOR] = 0.0

    # Pulse: the blood-volume change in the skin, weighted by the amplitude map, and its transit delay.
    pulse_map = canvas.skin * (1.0 - beard) * ident.perfusion
    delay = 0.04 * np.clip((0.6 - v) / 1.5, 0.0, 1.0) * (v > -1.2)
    direction = skin.pulse_direction(ident.melanin, ident.blood)
    skin_part = base_no_glasses * (1.0 - lenses[..., None] * 0.08)
    albedo_deltas[ALBEDO_PULSE] = skin_part * direction * pulse_map[..., None]
    albedo_deltas[ALBEDO_DELAY] = albedo_deltas[ALBEDO_PULSE] * delay[..., None]
    albedo_deltas[ALBEDO_BLINK] = blink_delta(sp, grid, look, albedo, eye_open)
    # Talking: the jaw drops and the lips part over a dark mouth.
    mouth = (coverage((np.abs(u) - 0.8 * sp.mouth_w) * grid.a)
             * np.exp(-0.5 * ((v - mouth_v - 0.01) / (0.5 * sp.lower_lip)) ** 2))
    albedo_deltas[ALBEDO_MOUTH] = (np.array([45.0, 20.0, 22.0]) - albedo) * np.clip(1.2 * mouth, 0, 1)[..., None]
    below = np.clip((v - mouth_v) / 0.05, 0, 1) * np.exp(-0.5 * (u / 0.8) ** 2) * (v < 1.2) * head_w
    flows[FLOW_JAW, ..., 1] = 0.09 * grid.b * below

    body = body_flows(vp, grid)
    flows[FLOW_RESP], flows[FLOW_X], flows[FLOW_Y], flows[FLOW_ROLL] = body
    # Yaw and pitch by one degree: points move by their depth (parallax), the head only.
    rad = np.pi / 180.0
    flows[FLOW_YAW, ..., 0] = rad * z * head_w
    flows[FLOW_PITCH, ..., 1] = rad * z * head_w

    background = head.cluttered_background(r, size)
    f32 = np.float32
    return PhysicalScene(
        albedo=albedo.astype(f32), alpha=alpha.astype(f32), normals=normals.astype(f32), cavity=cavity.astype(f32),
        gloss=gloss.astype(f32), albedo_deltas=albedo_deltas.astype(f32), relief_deltas=relief_deltas.astype(f32),
        flows=flows.astype(f32), background=background.astype(f32), pulse_map=pulse_map.astype(f32),
        delay_s=delay.astype(f32), face_box=face_box(grid))


# ----------------------------------------------------------------------------------------------------------
# Signals.


@dataclasses.dataclass
class PhysicalSignals:
    """Per-frame signals of one physical video (T frames) and its beats.

    Attributes:
      bvp: (T,) PPG at the reference site (beat foot 0, systolic peak ~1). dbvp: (T,) its time derivative (1/s).
      resp: (T,) about [-1, 1], up = inhale. hr_bpm, rr_bpm: (T,) instantaneous rates.
      beat_times_s: (n_beats,) systolic peak times of `bvp` (s).
      au_intensity: (T, 12). blink: (T,). talk: (T,) jaw opening in [0, 1].
      pose: (T, 6) head x, y (pixels), roll, yaw, pitch (degrees) and respiration weight.
      light: (T, 3) RGB light gain (level x colour x flicker). camera: (T, 3) camera gain (auto-exposure x
        white balance).
    """

    bvp: np.ndarray
    dbvp: np.ndarray
    resp: np.ndarray
    hr_bpm: np.ndarray
    rr_bpm: np.ndarray
    beat_times_s: np.ndarray
    au_intensity: np.ndarray
    blink: np.ndarray
    talk: np.ndarray
    pose: np.ndarray
    light: np.ndarray
    camera: np.ndarray


def _lag(x: np.ndarray, fps: float, tau_s: float) -> np.ndarray:
    """First-order low-pass (time constant tau_s) along axis 0, started at x[0]."""
    alpha = 1.0 - np.exp(-1.0 / (fps * max(tau_s, 1e-6)))
    out = np.empty_like(x)
    acc = x[0]
    for i in range(len(x)):
        acc = acc + alpha * (x[i] - acc)
        out[i] = acc
    return out


# How strongly `nuisance` = 1 moves the head (slow wandering and glances, talking nods) and changes the
# light (level drift, step probability, colour drift), relative to the ranges written in
# `physical_signals`. Light changes at 2x (level drift up to 24%, a step in 60% of videos, colour drift
# 6%, all followed by the camera's lagging auto-exposure and white balance) bring plain POS towards the
# real clips' SNR while the published BP4D+ pulse model and the default model still read the rates; more
# head motion costs the published model first, more light change the default model (docs/realism.md).
MOTION_GAIN = 1.0
LIGHT_GAIN = 2.0
# Fidgeting: RMS head translation (x, y; pixels of a 160-pixel frame) and rotation (roll, yaw, pitch;
# degrees) at full activity, spread over FIDGET_BAND_HZ.
FIDGET_RMS = (0.25, 0.2, 0.4, 0.8, 0.6)
FIDGET_BAND_HZ = (0.5, 4.0)


def fidget(subject_index: int, video_index: int, config: SyntheticConfig) -> np.ndarray:
    """Small quick head movements: (T, 5) offsets of head x, y (pixels) and roll, yaw, pitch (degrees).

    Seated people shift, nod and glance with content across the pulse band, and as the head turns the mix
    of lights on the skin and its highlights changes colour, which plain POS cannot cancel. Per video an
    activity level (0.3-1 times `FIDGET_RMS`, times `nuisance`) and slow bursts (stream 10, apart from the
    other signals).
    """
    n, fps = config.num_frames, float(config.fps)
    r = rng(config.seed, subject_index, video_index, 10)
    burst = np.clip(0.6 + 0.6 * waveforms.smooth_noise(r, n, fps, 0.1), 0.0, 1.0)
    s = config.frame_size / REFERENCE_SIZE
    rms = np.array(FIDGET_RMS) * np.array([s, s, 1.0, 1.0, 1.0]) * config.nuisance * r.uniform(0.3, 1.0)
    moves = np.stack([waveforms.band_noise(r, n, fps, *FIDGET_BAND_HZ) for _ in rms], axis=1)
    return burst[:, None] * rms * moves


def physical_signals(subject_index: int, video_index: int, config: SyntheticConfig, vp: VideoParams,
                     light: Lighting) -> PhysicalSignals:
    """The signals of one physical video (stream 3; deterministic by seed, subject, video)."""
    n, fps, k = config.num_frames, float(config.fps), config.nuisance
    r = rng(config.seed, subject_index, video_index, 3)
    t = np.arange(n) / fps
    resp, rr = waveforms.resp_wave(r, n, fps, config.rr_range_bpm, config.rr_drift_bpm, waveforms.RR_TYPICAL)
    hr_track = waveforms.rate_track(r, n, fps, config.hr_range_bpm, config.hr_drift_bpm * r.uniform(0.5, 1.0), 0.05,
                                    waveforms.HR_TYPICAL)
    beats = waveforms.beat_times(r, n / fps, lambda x: np.interp(x, t, hr_track), lambda x: np.interp(x, t, resp),
                                 rsa=r.uniform(0.01, 0.06), lf=r.uniform(0.01, 0.04), jitter=r.uniform(0.005, 0.02))
    phase = waveforms.beat_phase(beats, t)
    amp = 1.0 + 0.08 * waveforms.smooth_noise(r, n, fps, 0.3) + 0.05 * resp
    bvp = waveforms.ppg_shape(phase, r.uniform(0.35, 0.6)) * amp
    dbvp = np.gradient(bvp) * fps
    hr = waveforms.rate_from_beats(beats, t)
    au = waveforms.au_intensities(r, n, fps)
    blink = waveforms.blink_track(r, n, fps, config.blink_rate_hz * r.uniform(0.5, 1.5))
    talk = waveforms.talk_track(r, n, fps, k * r.uniform(0.0, 0.4))
    s = config.frame_size / REFERENCE_SIZE
    # Head pose: slow wandering, quicker glances, the BCG jolt (head moves up and back at ejection,
    # ~0.15 s before the facial PPG peak) and talking nods.
    bcg = -np.gradient(np.interp(t + 0.15, t, bvp)) * fps
    bcg /= max(np.abs(bcg).max(), 1e-9)
    km = k * MOTION_GAIN
    pose = np.stack([
        km * s * r.uniform(1.0, 4.0) * waveforms.smooth_noise(r, n, fps, 0.3),
        km * s * r.uniform(0.5, 2.0) * waveforms.smooth_noise(r, n, fps, 0.3) + s * r.uniform(0.05, 0.2) * bcg
        + 0.6 * s * talk * km,
        km * r.uniform(1.0, 4.0) * waveforms.smooth_noise(r, n, fps, 0.25),
        km * r.uniform(2.0, 10.0) * waveforms.smooth_noise(r, n, fps, 0.3),
        km * r.uniform(1.0, 5.0) * waveforms.smooth_noise(r, n, fps, 0.3) + 0.8 * talk * km,
        resp,
    ], axis=1)
    pose[:, :5] += fidget(subject_index, video_index, config)
    # Light: level drift, an occasional step (a lamp, a passer-by), colour drift, flicker.
    kl = k * LIGHT_GAIN
    level = 1.0 + kl * r.uniform(0.02, 0.12) * waveforms.smooth_noise(r, n, fps, 0.08)
    if r.uniform() < 0.3 * kl:
        level = level * (1.0 + r.uniform(-0.15, 0.15) * (t > r.uniform(0, n / fps)))
    colour = 1.0 + kl * 0.03 * np.stack([waveforms.smooth_noise(r, n, fps, 0.05) for _ in range(3)], axis=1)
    flick = 1.0 + light.flicker * np.sin(2 * np.pi * light.flicker_hz * t + r.uniform(0, 2 * np.pi))
    rgb_light = level[:, None] * colour * flick[:, None]
    # Camera: auto-exposure follows the light level, white balance its colour, both late.
    ae = light.exposure / _lag(level, fps, light.exposure_lag_s)
    wb = 1.0 / _lag(colour, fps, light.wb_lag_s)
    camera = ae[:, None] * wb
    return PhysicalSignals(bvp=bvp, dbvp=dbvp, resp=resp, hr_bpm=hr, rr_bpm=rr, beat_times_s=beats,
                           au_intensity=au, blink=blink, talk=talk, pose=pose, light=rgb_light, camera=camera)


def video_format(subject_index: int, video_index: int, config: SyntheticConfig) -> SyntheticConfig:
    """The config of one video: with `SyntheticConfig.vary_format`, its own fps (25 or 30) and frame size
    (160-720 pixels, log-uniform; stream 9); otherwise `config` itself."""
    if not config.vary_format:
        return config
    r = rng(config.seed, subject_index, video_index, 9)
    size = int(round(np.exp(r.uniform(np.log(160), np.log(720)))))
    return dataclasses.replace(config, fps=float(r.choice([25.0, 30.0])), frame_size=size)


def generate_physical(subject_index: int, video_index: int, config: SyntheticConfig) -> Recording:
    """One physical synthetic video with its labels (see `recordings.generate_recording`); its ``extra``
    holds ``beat_times_s`` (n_beats,) float64, the systolic peak times of the label `bvp` in seconds."""
    config = video_format(subject_index, video_index, config)
    # The scene is lit at no more than DETAIL_SIZE pixels; the camera (noise, JPEG) works at the frame size.
    detail = dataclasses.replace(config, frame_size=min(config.frame_size, DETAIL_SIZE))
    sp, ident = physical_subject(subject_index, config.seed)
    vp = video_params(sp, subject_index, video_index, detail)
    light = lighting(subject_index, video_index, config)
    sig = physical_signals(subject_index, video_index, detail, vp, light)
    scene = build_physical_scene(sp, ident, vp, detail.frame_size, config.au_strength,
                                 rng(config.seed, subject_index, video_index, 8))
    frames = render_physical(scene, sig, light, config.blood_pulse, rng(config.seed, subject_index, video_index, 4),
                             out_size=config.frame_size)
    k = config.frame_size / detail.frame_size
    box = tuple(int(round(k * x)) for x in scene.face_box)
    return synthetic_recording(subject_index, video_index, config, frames, sig, box, style="physical",
                               extra={"beat_times_s": sig.beat_times_s.astype(np.float64)})
