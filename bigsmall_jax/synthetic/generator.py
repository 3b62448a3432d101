"""Synthetic face videos with known pulse, respiration and action units: the embedded default dataset.

The real BP4D+ dataset is licensed, so the default training run learns from these. Each subject has a
fixed appearance (`SubjectParams`: skin tone, face shape, feature positions, hair, clothes, background);
each video draws its own nuisances (`VideoParams`: face size and position, light, sensor noise, head
motion) and its own signals (`bigsmall_jax.synthetic.waveforms`).

How a frame is made (all per-video arrays are precomputed once in a `Scene`, so a frame costs two small
matrix products, one `cv2.remap` and a few array operations):

1. A canonical premultiplied RGBA image of the subject (`Scene.base`, `Scene.alpha`) is drawn on the
   pixel grid from smooth signed-distance shapes: shoulders, neck, hair, ears, a Lambert-shaded face with
   skin texture, brows, eyes, nose and lips.
2. Colour changes are added as delta images weighted per frame (`Scene.deltas`): one per AU (wrinkles,
   furrows, dimples, teeth, cheek highlights), the pulse and blinks. The pulse delta darkens the skin as
   blood volume rises, in the rPPG colour ratio R:G:B = 0.3:1:0.6, most on cheeks and forehead, only on
   skin.
3. Shape changes are dense displacement fields weighted per frame (`Scene.flows`): one per AU (brows up
   or down, lids tightening, cheeks raising, lip corners moving, chin raising, lips pressing), the
   respiration (head and shoulders move up on inhalation, slight scale change) and the random head
   motion (translation, in-plane rotation). One `cv2.remap` applies their sum.
4. The subject is composited over the static background, lit (global level with slow drift, a fixed
   spatial gradient and white balance), Gaussian sensor noise is added, and the frame is rounded to
   uint8 (then optionally JPEG-compressed).

Learnability: the AU cues are deliberately exaggerated (brows move 4-7 px, wrinkles 2-3 px wide at
160 px; `SyntheticConfig.au_strength` scales them), because the default CPU run sees only ~8,000 Big
frames. Measured on the default dataset, held-out subjects (8 train / 4 held out): a linear ridge model
on the 9x9 Small frames recovers HR and RR exactly per 20 s video, and a 6-conv CNN on 72x72 Big frames
(batch 16, Adam 1e-3) reaches mean AU F1 0.68 after 3 epochs and 0.70 after 4. Train with
`bigsmall_jax.synthetic.waveforms.AU_POS_WEIGHT` (this data's label rates), not the BP4D+ pos_weight.

Units: lengths of the face model are in face units, u = (x - cx) / a across (-1 left edge, +1 right
edge of the face in the image) and v = (y - cy) / b down (-1 top of the head, +1 chin), where (cx, cy)
is the face centre and a, b its half-width and half-height in pixels. Pixel quantities in
`SyntheticConfig` refer to a 160-pixel frame and scale with `frame_size`.

Command line: ``python -m bigsmall_jax.synthetic --out DIR`` writes every video as ``<name>.mp4``
(lossless H.264) + ``<name>.csv`` (per-frame labels), a contact sheet and a label plot.
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import dataclasses
import functools
import io
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from bigsmall_jax.datasets.recording import AU_NAMES, Recording
from bigsmall_jax.errors import UserError, cli_main, file_error
from bigsmall_jax.synthetic import waveforms

log = logging.getLogger(__name__)

REFERENCE_SIZE = 160  # pixel knobs of SyntheticConfig are given for a frame of this size
RPPG_RGB = (0.3, 1.0, 0.6)  # relative pulse modulation of R, G, B
CSV_COLUMNS = ("frame", "time_s", "bvp", "resp", "hr_bpm", "rr_bpm", *AU_NAMES)
N_FLOWS = len(AU_NAMES) + 4  # 12 AUs, respiration, head x, head y, head rotation
N_DELTAS = len(AU_NAMES) + 2  # 12 AUs, pulse, blink

# Coarse anatomical region of each AU in face units: (|u| min, |u| max, v min, v max). Each AU's pixel
# changes lie inside (used by the tests and documentation; the drawing uses the subject's own feature
# positions, which lie well inside these).
AU_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "AU01": (0.0, 0.5, -0.95, -0.05),
    "AU02": (0.2, 0.95, -0.95, -0.05),
    "AU04": (0.0, 0.75, -0.7, 0.05),
    "AU06": (0.05, 0.95, -0.35, 0.5),
    "AU07": (0.05, 0.75, -0.45, 0.15),
    "AU10": (0.0, 0.65, 0.0, 0.7),
    "AU12": (0.0, 0.8, 0.05, 0.85),
    "AU14": (0.0, 0.85, 0.15, 0.85),
    "AU15": (0.0, 0.7, 0.3, 0.95),
    "AU17": (0.0, 0.55, 0.4, 1.1),
    "AU23": (0.0, 0.6, 0.3, 0.8),
    "AU24": (0.0, 0.6, 0.3, 0.8),
}


# ----------------------------------------------------------------------------------------------------------
# Configuration and parameters.


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """What to generate.

    Attributes:
      n_subjects: number of subjects; appearance is fixed per subject.
      videos_per_subject: videos per subject.
      duration_s: length of every video in seconds.
      fps: frame rate (Hz).
      frame_size: frames are frame_size x frame_size RGB.
      seed: everything is a deterministic function of (seed, subject index, video index).
      compression: JPEG-encode and decode every frame (quality `jpeg_quality`).
      jpeg_quality: 1..100.
      hr_range_bpm, rr_range_bpm: instantaneous heart and breathing rates stay inside these.
      hr_drift_bpm, rr_drift_bpm: largest slow excursion of the rate within a video (per video, a random
        fraction of it, 50-100%).
      pulse_amplitude: mean peak-to-peak pulse modulation of the green channel of cheek/forehead skin, as
        a fraction of the skin intensity (per subject x0.7-1.3, per video x0.85-1.15).
      resp_motion_px: mean peak-to-peak vertical head motion from breathing, pixels of a 160 frame
        (shoulders move 1.6x as much; per video x0.7-1.3).
      head_motion_px: largest random head translation, pixels of a 160 frame (vertical: 30% of it).
      head_rotation_deg: largest random in-plane head rotation, degrees.
      illumination_drift: largest slow relative change of the light level within a video.
      noise_std: mean sensor-noise standard deviation in grey levels (per video x0.5-1.5).
      blink_rate_hz: mean blink rate (Hz).
      au_strength: scales every AU's motion and shading (1: the default, deliberately exaggerated look).
      val_fraction, test_fraction: share of subjects held out for validation and test.
    """

    n_subjects: int = 12
    videos_per_subject: int = 2
    duration_s: float = 20.0
    fps: float = 25.0
    frame_size: int = 160
    seed: int = 0
    compression: bool = False
    jpeg_quality: int = 80
    hr_range_bpm: tuple[float, float] = waveforms.HR_RANGE_BPM
    rr_range_bpm: tuple[float, float] = waveforms.RR_RANGE_BPM
    hr_drift_bpm: float = 3.0
    rr_drift_bpm: float = 1.5
    pulse_amplitude: float = 0.012
    resp_motion_px: float = 1.5
    head_motion_px: float = 1.0
    head_rotation_deg: float = 0.8
    illumination_drift: float = 0.05
    noise_std: float = 2.0
    blink_rate_hz: float = 0.15
    au_strength: float = 1.0
    val_fraction: float = 1.0 / 6.0
    test_fraction: float = 1.0 / 6.0

    def __post_init__(self):
        def bad(name, why):
            return UserError(f"SyntheticConfig.{name}: {why}, got {getattr(self, name)!r}")

        for name in ("n_subjects", "videos_per_subject"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "must be >= 1")
        for name in ("duration_s", "fps"):
            if not float(getattr(self, name)) > 0:
                raise bad(name, "must be > 0")
        if int(self.frame_size) < 48:
            raise bad("frame_size", "must be >= 48 pixels")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise bad("jpeg_quality", "must be in 1..100")
        for name in ("hr_drift_bpm", "rr_drift_bpm", "pulse_amplitude", "resp_motion_px", "head_motion_px",
                     "head_rotation_deg", "illumination_drift", "noise_std", "blink_rate_hz", "au_strength"):
            if not float(getattr(self, name)) >= 0:
                raise bad(name, "must be >= 0")
        if self.illumination_drift >= 1 or self.pulse_amplitude >= 0.5:
            raise bad("illumination_drift" if self.illumination_drift >= 1 else "pulse_amplitude", "too large")
        for name in ("hr_range_bpm", "rr_range_bpm"):
            lo, hi = getattr(self, name)
            if not 0 < lo < hi:
                raise bad(name, "must be (lo, hi) with 0 < lo < hi")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            raise UserError("SyntheticConfig.val_fraction / test_fraction: each in [0, 1) and their sum < 1, "
                            f"got {self.val_fraction!r}, {self.test_fraction!r}")

    @property
    def num_frames(self) -> int:
        """Frames per video."""
        return max(1, int(round(self.duration_s * self.fps)))


@dataclasses.dataclass(frozen=True)
class SubjectParams:
    """Appearance of one subject, the same in all its videos. Positions and sizes in face units.

    Colours are RGB in grey levels (0-255) under unit light.
    """

    skin_rgb: tuple[float, float, float]
    hair_rgb: tuple[float, float, float]
    brow_rgb: tuple[float, float, float]
    lip_rgb: tuple[float, float, float]
    iris_rgb: tuple[float, float, float]
    shirt_rgb: tuple[float, float, float]
    background_rgb: tuple[float, float, float]
    background2_rgb: tuple[float, float, float]
    aspect: float  # a / b
    chin_taper: float  # how much the face narrows towards the chin
    eye_y: float
    eye_dx: float  # |u| of the eye centres
    eye_w: float  # half width (u)
    eye_h: float  # half height of the opening above the centre line (v)
    brow_y: float  # v of the brow at its middle
    brow_inner: float  # |u| of the inner brow end
    brow_len: float  # brow length in u
    brow_thick: float  # v
    brow_arch: float  # v
    nose_y: float  # v of the nose tip
    nose_w: float  # half width of the nose wings (u)
    mouth_y: float
    mouth_w: float  # half width (u)
    upper_lip: float  # height (v)
    lower_lip: float  # height (v)
    mouth_curve: float  # v offset of the mouth corners (+ down)
    hairline: float  # v of the hairline at the middle
    hair_length: float  # v down to which side hair falls (-0.2 short .. 1.8 long)
    neck_w: float  # half width (u)
    perfusion: float  # relative pulse strength of this subject's skin
    pulse_forehead: float  # relative pulse weight of the forehead vs the cheeks
    texture_seed: int


@dataclasses.dataclass(frozen=True)
class VideoParams:
    """Per-video nuisances: where the face is and how the video is lit and recorded.

    Attributes:
      cx, cy: face centre in pixels. a, b: face half-width and half-height in pixels.
      light_dir: (x, y, z) unit direction towards the light (image axes, z towards the camera).
      light_level: mean light gain. light_gradient: (gx, gy) relative gain change across the frame.
      white_balance: RGB gains. illumination_drift: largest relative light drift.
      noise_std: sensor noise in grey levels. pulse_amp: green peak-to-peak pulse fraction on cheeks.
      resp_px: peak-to-peak vertical head motion from breathing, pixels. resp_scale: relative head scale
        change from breathing (peak). head_px, head_deg: random head motion amplitudes.
    """

    cx: float
    cy: float
    a: float
    b: float
    light_dir: tuple[float, float, float]
    light_level: float
    light_gradient: tuple[float, float]
    white_balance: tuple[float, float, float]
    illumination_drift: float
    noise_std: float
    pulse_amp: float
    resp_px: float
    resp_scale: float
    head_px: float
    head_deg: float


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


_SKIN_PALETTE = np.array([  # light to dark skin, RGB
    (240, 205, 180), (228, 184, 152), (205, 152, 115), (168, 118, 85), (124, 84, 58), (92, 62, 44),
], np.float64)
_HAIR_PALETTE = np.array([
    (28, 24, 22), (58, 40, 30), (105, 72, 45), (185, 148, 95), (150, 148, 145), (135, 62, 32),
], np.float64)
_HAIR_WEIGHTS = np.array([0.3, 0.25, 0.17, 0.12, 0.08, 0.08])
_IRIS_PALETTE = np.array([(70, 45, 30), (40, 30, 25), (80, 110, 140), (90, 110, 70)], np.float64)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (255.0 * r, 255.0 * g, 255.0 * b)


def _t3(x) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.clip(x, 0.0, 255.0))  # type: ignore[return-value]


def subject_params(subject_index: int, seed: int) -> SubjectParams:
    """The fixed appearance of subject `subject_index` for a dataset seed (independent of video settings)."""
    r = _rng(seed, subject_index, 1)
    pos = r.uniform(0.0, len(_SKIN_PALETTE) - 1)
    i = min(int(pos), len(_SKIN_PALETTE) - 2)
    skin = (_SKIN_PALETTE[i] * (i + 1 - pos) + _SKIN_PALETTE[i + 1] * (pos - i)) * r.uniform(0.95, 1.05, 3)
    hair = _HAIR_PALETTE[r.choice(len(_HAIR_PALETTE), p=_HAIR_WEIGHTS)] * r.uniform(0.85, 1.15)
    brow = np.minimum(0.45 * hair + 0.55 * 0.42 * skin, 0.55 * skin)  # always clearly darker than the skin
    lip = skin * np.array([0.86, 0.58, 0.6]) * r.uniform(0.9, 1.05)
    iris = _IRIS_PALETTE[r.integers(len(_IRIS_PALETTE))]
    shirt = _hsv(r.uniform(), r.uniform(0.2, 0.7), r.uniform(0.3, 0.85))
    bg_h = r.uniform()
    background = _hsv(bg_h, r.uniform(0.05, 0.35), r.uniform(0.35, 0.85))
    background2 = _hsv(bg_h + r.uniform(-0.1, 0.1), r.uniform(0.05, 0.35), r.uniform(0.3, 0.85))
    eye_y = r.uniform(-0.2, -0.1)
    brow_inner = r.uniform(0.08, 0.14)
    return SubjectParams(
        skin_rgb=_t3(skin), hair_rgb=_t3(hair), brow_rgb=_t3(brow), lip_rgb=_t3(lip), iris_rgb=_t3(iris),
        shirt_rgb=_t3(shirt), background_rgb=_t3(background), background2_rgb=_t3(background2),
        aspect=r.uniform(0.74, 0.84), chin_taper=r.uniform(0.15, 0.35),
        eye_y=eye_y, eye_dx=r.uniform(0.34, 0.4), eye_w=r.uniform(0.15, 0.19), eye_h=r.uniform(0.06, 0.08),
        brow_y=eye_y - r.uniform(0.17, 0.22), brow_inner=brow_inner, brow_len=r.uniform(0.4, 0.5),
        brow_thick=r.uniform(0.04, 0.06), brow_arch=r.uniform(0.02, 0.06),
        nose_y=r.uniform(0.2, 0.28), nose_w=r.uniform(0.13, 0.18),
        mouth_y=r.uniform(0.5, 0.57), mouth_w=r.uniform(0.26, 0.33),
        upper_lip=r.uniform(0.045, 0.065), lower_lip=r.uniform(0.06, 0.085), mouth_curve=r.uniform(-0.02, 0.02),
        hairline=r.uniform(-0.85, -0.68), hair_length=float(r.choice([-0.15, 0.5, 1.8], p=[0.45, 0.3, 0.25])),
        neck_w=r.uniform(0.42, 0.52), perfusion=r.uniform(0.7, 1.3), pulse_forehead=r.uniform(0.6, 1.0),
        texture_seed=int(r.integers(2**31)),
    )


def video_params(subject: SubjectParams, subject_index: int, video_index: int,
                 config: SyntheticConfig) -> VideoParams:
    """Nuisances of one video (deterministic by seed, subject, video)."""
    r = _rng(config.seed, subject_index, video_index, 2)
    s = float(config.frame_size)
    k = s / REFERENCE_SIZE
    b = s * r.uniform(0.28, 0.32)
    a = b * subject.aspect
    ld = np.array([r.uniform(-0.5, 0.5), r.uniform(-0.5, 0.1), 1.0])
    ld /= np.linalg.norm(ld)
    return VideoParams(
        cx=s * (0.5 + r.uniform(-0.05, 0.05)), cy=s * (0.42 + r.uniform(-0.03, 0.03)), a=a, b=b,
        light_dir=tuple(float(v) for v in ld),  # type: ignore[arg-type]
        light_level=r.uniform(0.8, 1.1), light_gradient=(r.uniform(-0.2, 0.2), r.uniform(-0.15, 0.15)),
        white_balance=tuple(float(v) for v in r.uniform(0.95, 1.05, 3)),  # type: ignore[arg-type]
        illumination_drift=config.illumination_drift * r.uniform(0.3, 1.0),
        noise_std=config.noise_std * r.uniform(0.5, 1.5),
        pulse_amp=config.pulse_amplitude * subject.perfusion * r.uniform(0.85, 1.15),
        resp_px=config.resp_motion_px * k * r.uniform(0.7, 1.3), resp_scale=r.uniform(0.002, 0.005),
        head_px=config.head_motion_px * k * r.uniform(0.5, 1.0),
        head_deg=config.head_rotation_deg * r.uniform(0.5, 1.0),
    )


# ----------------------------------------------------------------------------------------------------------
# The scene: canonical subject image, delta images and displacement fields of one video.


@dataclasses.dataclass
class Scene:
    """Everything precomputed to render the frames of one video (S = frame size).

    Attributes:
      base: (S, S, 3) float32 premultiplied colour of the subject layer (grey levels, unit light).
      alpha: (S, S) float32 coverage of the subject layer.
      background: (S, S, 3) float32 static background colour.
      light: (S, S, 3) float32 static light gain (spatial gradient x white balance).
      deltas: (N_DELTAS, S, S, 3) float32 colour change per unit weight: 12 AUs (`AU_NAMES` order), the
        pulse (per unit of the centred pulse wave) and the blink (per unit eye closure).
      flows: (N_FLOWS, S, S, 2) float32 content displacement (dx, dy) in pixels per unit weight: 12 AUs,
        respiration (per unit of the respiration wave), head x (per pixel), head y (per pixel), head
        rotation (per degree).
      skin: (S, S) float32 pulse weight of each pixel: visible skin, 1 on cheeks/forehead, 0 off skin.
      face_box: (x, y, w, h) the square face box a face detector would give (cheek to cheek, upper
        forehead to chin), ints.
    """

    base: np.ndarray
    alpha: np.ndarray
    background: np.ndarray
    light: np.ndarray
    deltas: np.ndarray
    flows: np.ndarray
    skin: np.ndarray
    face_box: tuple[int, int, int, int]


def _cov(sd: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - sd, 0.0, 1.0)


def _ellipse_sd(x, y, cx, cy, rx, ry, power: float = 2.0) -> np.ndarray:
    """Approximate signed distance in pixels to a (super)ellipse, measured along the ray from its centre."""
    dx, dy = x - cx, y - cy
    r = (np.abs(dx / rx) ** power + np.abs(dy / ry) ** power) ** (1.0 / power)
    dist = np.hypot(dx, dy)
    return np.where(r > 1e-6, dist * (r - 1.0) / np.maximum(r, 1e-6), -min(rx, ry))


class _Canvas:
    """Premultiplied painter's-algorithm canvas that also tracks how much visible skin each pixel shows."""

    def __init__(self, size: int):
        self.rgb = np.zeros((size, size, 3), np.float64)
        self.alpha = np.zeros((size, size), np.float64)
        self.skin = np.zeros((size, size), np.float64)

    def paint(self, colour, mask: np.ndarray, skin: float | np.ndarray = 0.0) -> None:
        m = np.clip(mask, 0.0, 1.0)
        self.rgb = self.rgb * (1.0 - m[..., None]) + np.asarray(colour, np.float64) * m[..., None]
        self.alpha = self.alpha * (1.0 - m) + m
        self.skin = self.skin * (1.0 - m) + m * skin


def _smooth_texture(seed: int, shape: tuple[int, int], blur: float) -> np.ndarray:
    """Zero-mean, unit-peak blurred noise image (fixed per seed)."""
    n = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), blur, borderType=cv2.BORDER_REFLECT)
    n -= n.mean()
    return n / max(float(np.abs(n).max()), 1e-6)


def _sample(img: np.ndarray, u: np.ndarray, v: np.ndarray, extent: float) -> np.ndarray:
    """Samples a square texture spanning face coordinates [-extent, extent]^2 at (u, v)."""
    n = img.shape[0]
    mx = ((u + extent) / (2 * extent) * (n - 1)).astype(np.float32)
    my = ((v + extent) / (2 * extent) * (n - 1)).astype(np.float32)
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def build_scene(subject: SubjectParams, video: VideoParams, frame_size: int, au_strength: float = 1.0) -> Scene:
    """Draws the canonical subject and precomputes the per-video delta images and displacement fields."""
    sp, vp, size = subject, video, int(frame_size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cx, cy, a, b = vp.cx, vp.cy, vp.a, vp.b
    u, v = (xx - cx) / a, (yy - cy) / b
    skin = np.asarray(sp.skin_rgb)
    lx, ly, lz = vp.light_dir

    def gauss(u0, v0, su, sv):
        return np.exp(-0.5 * (((u - u0) / su) ** 2 + ((v - v0) / sv) ** 2))

    def both(fn):  # a feature on both sides of the face: fn(side) with side = -1 (image left), +1
        return fn(-1.0) + fn(1.0)

    # Shading of a face-like ellipsoid (Lambert + ambient), and the skin texture.
    taper = 1.0 - sp.chin_taper * np.clip(v, 0.0, 1.0) ** 2
    un = u / taper
    rr = np.clip(un**2 + v**2, 0.0, 1.0)
    lambert = np.clip(lx * un + ly * v + lz * np.sqrt(1.0 - rr), 0.0, None)
    shade = 0.6 + 0.45 * lambert
    texture = _sample(_smooth_texture(sp.texture_seed, (96, 96), 1.2), u, v, 1.6)
    blush = gauss(-0.45, 0.2, 0.2, 0.15) + gauss(0.45, 0.2, 0.2, 0.15)
    face_rgb = (skin * (shade * (1.0 + 0.035 * texture))[..., None]
                * (1.0 + 0.07 * blush[..., None] * np.array([0.6, -0.4, -0.4])))

    canvas = _Canvas(size)
    # Long hair behind the head.
    if sp.hair_length > 0:
        back = _cov(_ellipse_sd(xx, yy, cx, cy - 0.05 * b, 1.2 * a, 1.12 * b))
        below = _cov((np.abs(u) - 1.2) * a) * _cov((v - sp.hair_length) * b) * (v > -0.3)
        hair_back = np.maximum(back, below)
        canvas.paint(np.asarray(sp.hair_rgb) * 0.8, hair_back)
    # Neck: skin, shadowed under the jaw.
    neck_half = sp.neck_w * a * (1.0 + 0.15 * np.clip(v - 0.8, 0.0, None))
    neck = _cov(np.abs(xx - cx) - neck_half) * _cov((0.3 - v) * b)
    neck_shade = 0.72 + 0.18 * np.clip((v - 1.0) / 0.6, 0.0, 1.0)
    canvas.paint(skin * (neck_shade * (1.0 + 0.03 * texture))[..., None], neck, skin=0.5)
    # Torso with a rounded neckline.
    torso = _cov(_ellipse_sd(xx, yy, cx, cy + 2.45 * b, 2.15 * a, 1.15 * b, power=2.6))
    neckline = _cov(_ellipse_sd(xx, yy, cx, cy + 1.32 * b, 1.1 * sp.neck_w * a, 0.28 * b))
    torso_shade = 0.95 - 0.25 * np.clip((v - 1.3) / 1.5, 0.0, 1.0) + 0.05 * lx * np.clip(u / 2.0, -1, 1)
    canvas.paint(np.asarray(sp.shirt_rgb) * torso_shade[..., None], torso * (1.0 - neckline))
    # Ears.
    for side in (-1.0, 1.0):
        ear = _cov(_ellipse_sd(xx, yy, cx + side * 0.97 * a, cy + 0.05 * b, 0.13 * a, 0.22 * b))
        inner = gauss(side * 0.98, 0.05, 0.05, 0.1)
        canvas.paint(skin * (0.85 * (1.0 - 0.25 * inner))[..., None], ear, skin=0.6)
    # Face.
    face_r = np.sqrt(un**2 + v**2)
    face_sd = np.hypot(xx - cx, yy - cy) * (face_r - 1.0) / np.maximum(face_r, 1e-6)
    face = _cov(face_sd)
    pulse_region = 0.55 + 0.45 * np.clip(blush / 0.8 + sp.pulse_forehead * gauss(0.0, -0.55, 0.4, 0.2), 0, 1)
    canvas.paint(face_rgb, face, skin=pulse_region)
    # Front hair: the cap above the hairline (lower at the temples) and side locks.
    cap = _cov(_ellipse_sd(xx, yy, cx, cy - 0.07 * b, 1.1 * a, 1.05 * b))
    hairline = sp.hairline + 0.3 * u**2
    above = _cov((v - hairline) * b)
    sides = _cov((np.abs(u) - 0.9) * -a) * _cov((v - min(sp.hair_length, 0.15)) * b) * (np.abs(u) < 1.15)
    strands = 1.0 + 0.12 * np.sin(u * 38.0 + 3.0 * texture) * np.clip(-v, 0, 1)
    hair_rgb = np.asarray(sp.hair_rgb) * ((0.75 + 0.35 * lambert) * strands)[..., None]
    canvas.paint(hair_rgb, np.maximum(cap * above, sides * cap))

    # Brows.
    brow_mid = sp.brow_inner + 0.5 * sp.brow_len
    au_abs = np.abs(u)
    brow_v = sp.brow_y - sp.brow_arch * (1.0 - ((au_abs - brow_mid) / (0.5 * sp.brow_len)) ** 2)
    thick = sp.brow_thick * (1.0 - 0.45 * np.clip((au_abs - sp.brow_inner) / sp.brow_len, 0, 1))
    brow_sd = np.maximum((np.abs(v - brow_v) - 0.5 * thick) * b,
                         np.maximum(sp.brow_inner - au_abs, au_abs - sp.brow_inner - sp.brow_len) * a)
    brows = _cov(brow_sd)
    canvas.paint(np.asarray(sp.brow_rgb) * shade[..., None] * (1 + 0.1 * texture[..., None]), brows)

    # Eyes: almond openings with sclera, iris, pupil, lash line and lid crease.
    eye_open = np.zeros_like(u)
    for side in (-1.0, 1.0):
        p = (u - side * sp.eye_dx) / sp.eye_w
        q = (v - sp.eye_y) / sp.eye_h
        bulge = np.clip(1.0 - p**2, 0.0, None)
        sd = np.maximum(np.maximum((-bulge - q) * sp.eye_h * b, (q - 0.75 * bulge) * sp.eye_h * b),
                        (np.abs(p) - 1.0) * sp.eye_w * a)
        opening = _cov(sd)
        eye_open += opening
        ex, ey = cx + side * sp.eye_dx * a, cy + (sp.eye_y + 0.1 * sp.eye_h) * b
        ri = 0.95 * sp.eye_h * b
        iris = _cov(np.hypot(xx - ex, yy - ey) - ri) * opening
        pupil = _cov(np.hypot(xx - ex, yy - ey) - 0.45 * ri) * opening
        canvas.paint(np.array([236.0, 230.0, 222.0]) * (0.8 + 0.15 * lambert)[..., None], opening)
        canvas.paint(np.asarray(sp.iris_rgb), iris)
        canvas.paint(np.array([15.0, 12.0, 12.0]), pupil)
        lash = _cov(np.abs(q + bulge) * sp.eye_h * b - 0.6) * _cov((np.abs(p) - 1.05) * sp.eye_w * a)
        canvas.paint(np.array([30.0, 24.0, 22.0]), lash)
        crease = np.exp(-0.5 * ((q + 1.9 * bulge + 0.35) / 0.25) ** 2) * (np.abs(p) < 1.1) * (1 - opening)
        canvas.rgb *= (1.0 - 0.12 * crease)[..., None]
    eye_open = np.clip(eye_open, 0.0, 1.0)

    # Nose: shading, tip highlight, alar wings and nostrils.
    bridge = sum(np.exp(-0.5 * ((u - s * 0.1) / 0.03) ** 2) * (0.5 - 0.8 * s * lx)
                 * np.clip((v - sp.eye_y) / 0.1, 0, 1) * (v < sp.nose_y) for s in (-1.0, 1.0))
    wings = both(lambda s: np.exp(-0.5 * ((np.hypot((u - s * 0.8 * sp.nose_w) / 0.06,
                                                    (v - sp.nose_y) / 0.05) - 1.0) / 0.35) ** 2))
    under = gauss(0.0, sp.nose_y + 0.07, 0.12, 0.025)
    tip = gauss(0.0, sp.nose_y - 0.04, 0.06, 0.05)
    canvas.rgb *= (1.0 - 0.1 * bridge - 0.15 * wings - 0.12 * under + 0.06 * tip)[..., None]
    nostrils = both(lambda s: _cov(_ellipse_sd(xx, yy, cx + s * 0.075 * a, cy + (sp.nose_y + 0.025) * b,
                                               0.045 * a, 0.022 * b)))
    canvas.paint(skin * 0.35, nostrils)

    # Lips and the mouth line.
    mw, my = sp.mouth_w, sp.mouth_y
    rel = np.clip(u / mw, -1.0, 1.0)
    inside_w = np.clip(1.0 - rel**2, 0.0, None)
    mouth_v = my + sp.mouth_curve * rel**2
    upper_top = mouth_v - sp.upper_lip * inside_w**0.6 * (1.0 - 0.25 * np.exp(-0.5 * (u / 0.05) ** 2))
    lower_bot = mouth_v + sp.lower_lip * inside_w**0.7
    lip_sd = np.maximum(np.maximum((upper_top - v) * b, (v - lower_bot) * b), (np.abs(u) - mw) * a)
    lips = _cov(lip_sd)
    lip_shade = np.where(v < mouth_v, 0.86, 1.0) * (1.0 + 0.1 * gauss(0.0, my + 0.6 * sp.lower_lip, 0.12, 0.02))
    canvas.paint(np.asarray(sp.lip_rgb) * (shade * lip_shade)[..., None], lips, skin=0.8)
    mouth_line = _cov(np.abs(v - mouth_v) * b - 0.55) * _cov((np.abs(u) - 0.98 * mw) * a)
    canvas.paint(np.asarray(sp.lip_rgb) * 0.3, mouth_line)

    base = canvas.rgb
    alpha = canvas.alpha
    skin_map = canvas.skin

    deltas = np.zeros((N_DELTAS, size, size, 3))
    flows = np.zeros((N_FLOWS, size, size, 2))
    skin_rgb = face_rgb * np.array([1.0, 0.97, 0.97])
    _au_changes(deltas, flows, sp, base, skin_rgb, np.clip(shade, 0.0, 1.0), lips, mouth_v, u, v, a, b,
                strength=au_strength)

    # Pulse: more blood -> darker skin, in the rPPG colour ratio, weighted to cheeks and forehead.
    deltas[len(AU_NAMES)] = -vp.pulse_amp * np.asarray(RPPG_RGB) * skin_map[..., None] * base
    # Blink: the opening becomes lid skin with a lash line across.
    closed = face_rgb * 0.9
    for side in (-1.0, 1.0):
        p = (u - side * sp.eye_dx) / sp.eye_w
        q = (v - sp.eye_y) / sp.eye_h
        line = _cov(np.abs(q - 0.45 * np.clip(1 - p**2, 0, None)) * sp.eye_h * b - 0.6) * (np.abs(p) < 1.0)
        closed = closed * (1.0 - 0.75 * line[..., None])
    deltas[len(AU_NAMES) + 1] = (closed - base) * eye_open[..., None]

    # Respiration: head (and more so the shoulders) rise on inhalation; the head scales slightly.
    head = 1.0 / (1.0 + np.exp(-(cy + 1.15 * b - yy) / (0.1 * b)))
    amp = 0.5 * vp.resp_px
    k = len(AU_NAMES)
    flows[k, ..., 0] = vp.resp_scale * (xx - cx) * head
    flows[k, ..., 1] = -amp * (head + 1.6 * (1.0 - head)) + vp.resp_scale * (yy - cy) * head
    # Random head motion: full on the head, 35% on the torso; rotation about the neck.
    carry = head + 0.35 * (1.0 - head)
    flows[k + 1, ..., 0] = carry
    flows[k + 2, ..., 1] = carry
    px, py = cx, cy + 1.1 * b
    flows[k + 3, ..., 0] = -(yy - py) * np.pi / 180.0 * head
    flows[k + 3, ..., 1] = (xx - px) * np.pi / 180.0 * head

    # Background: two colours mixed by a smooth pattern, fixed per subject.
    pattern = _smooth_texture(sp.texture_seed + 1, (12, 12), 1.5)
    pattern = cv2.resize(pattern, (size, size), interpolation=cv2.INTER_CUBIC)
    mix = np.clip(0.5 + 0.6 * pattern + 0.3 * (yy / size - 0.5), 0.0, 1.0)[..., None]
    background = np.asarray(sp.background_rgb) * (1 - mix) + np.asarray(sp.background2_rgb) * mix
    gx, gy = vp.light_gradient
    light = (1.0 + gx * (xx / size - 0.5) + gy * (yy / size - 0.5))[..., None] * np.asarray(vp.white_balance)

    side = int(round(2.0 * a))
    box_cy = cy + 0.2 * b
    face_box = (int(round(cx - side / 2.0)), int(round(box_cy - side / 2.0)), side, side)
    f32 = np.float32
    return Scene(base=base.astype(f32), alpha=alpha.astype(f32), background=background.astype(f32),
                 light=light.astype(f32), deltas=deltas.astype(f32), flows=flows.astype(f32),
                 skin=skin_map.astype(f32), face_box=face_box)


def _au_changes(deltas: np.ndarray, flows: np.ndarray, sp: SubjectParams, base: np.ndarray, skin_rgb: np.ndarray,
                shading: np.ndarray, lips: np.ndarray, mouth_v: np.ndarray, u: np.ndarray, v: np.ndarray,
                a: float, b: float, strength: float = 1.0) -> None:
    """Fills deltas[:12] (colour change at full intensity) and flows[:12] (content displacement, px) per AU.

    Shapes move by displacement fields (brows, lids, cheeks, lip corners, chin, lips); wrinkles, furrows,
    dimples, highlights and teeth are colour changes. Magnitudes are exaggerated relative to real faces
    (4-8 pixels of motion and wrinkles 2-3 pixels wide at 160 px) so that a small CNN learns every AU from
    a few thousand frames at 144 x 144; `strength` scales all of them.
    """
    au = {name: i for i, name in enumerate(AU_NAMES)}

    def g(u0, v0, su, sv):
        return np.exp(-0.5 * (((u - u0) / su) ** 2 + ((v - v0) / sv) ** 2))

    def both(fn):
        return fn(-1.0) + fn(1.0)

    def line(dist, width):  # a soft line of Gaussian profile across `dist` (face units)
        return np.exp(-0.5 * (dist / width) ** 2)

    def window(x, lo, hi, soft=0.02):  # smooth 0..1 window for x in [lo, hi]
        return np.clip((x - lo) / soft + 0.5, 0, 1) * np.clip((hi - x) / soft + 0.5, 0, 1)

    def shade(name, rel):  # relative brightness change of whatever is drawn there
        deltas[au[name]] += base * np.maximum(strength * rel, -0.9)[..., None]

    def recolour(name, target_rgb, mask):  # blend towards another colour
        deltas[au[name]] += (target_rgb - base) * np.clip(strength * mask, 0.0, 1.0)[..., None]

    def move(name, du, dv):  # content displacement in face units
        flows[au[name], ..., 0] += strength * du * a
        flows[au[name], ..., 1] += strength * dv * b

    by, ey, ex = sp.brow_y, sp.eye_y, sp.eye_dx
    my, mw = sp.mouth_y, sp.mouth_w
    ua = np.abs(u)
    teeth_rgb = np.array([232.0, 228.0, 215.0]) * shading[..., None]

    # AU01 inner brow raiser: inner brows up (oblique brows), central forehead wrinkles.
    inner = both(lambda s: g(s * (sp.brow_inner + 0.1), by, 0.13, 0.15))
    move("AU01", 0.0, -0.14 * inner)
    wr = sum(line(v - (by - 0.17 - 0.09 * k), 0.022) for k in range(3))
    shade("AU01", -0.4 * wr * g(0.0, by - 0.25, 0.2, 0.2))

    # AU02 outer brow raiser: outer brows up (arched, surprised), lateral forehead wrinkles.
    outer = both(lambda s: g(s * (sp.brow_inner + 0.8 * sp.brow_len), by, 0.13, 0.15))
    move("AU02", 0.0, -0.14 * outer)
    wr = sum(line(v - (by - 0.17 - 0.09 * k + 0.15 * (ua - 0.5) ** 2), 0.022) for k in range(3))
    shade("AU02", -0.45 * wr * both(lambda s: g(s * 0.55, by - 0.22, 0.15, 0.2)))

    # AU04 brow lowerer: brows down and together, vertical furrows between them, shadowed lids.
    for s in (-1.0, 1.0):
        w = g(s * (sp.brow_inner + 0.15), by, 0.2, 0.14)
        move("AU04", -s * 0.07 * w, 0.1 * w)
    furrows = both(lambda s: line(u - s * 0.055, 0.02)) * g(0.0, by + 0.02, 1.0, 0.08)
    shade("AU04", -0.5 * furrows - 0.25 * both(lambda s: g(s * ex, ey - 0.08, 0.15, 0.05))
          - 0.2 * g(0.0, by + 0.12, 0.07, 0.03))

    # AU06 cheek raiser: cheeks and lower lids up, bright cheek bulge, crow's feet, infraorbital furrow.
    move("AU06", 0.0, -0.09 * both(lambda s: g(s * (ex + 0.04), ey + 0.26, 0.18, 0.12)))
    corner = ex + sp.eye_w
    feet = sum(both(lambda s, j=j: line(v - ey - 0.06 * j - 0.35 * j * (ua - corner), 0.02)
                    * window(ua, corner + 0.03, corner + 0.17) * (u * s > 0)) for j in (-1, 0, 1))
    shade("AU06", 0.2 * both(lambda s: g(s * 0.42, ey + 0.33, 0.15, 0.09)) - 0.45 * feet
          - 0.35 * both(lambda s: g(s * ex, ey + 1.1 * sp.eye_h + 0.08, 0.13, 0.022)))

    # AU07 lid tightener: both lids close in towards the eye's centre line (narrowed eyes), tense lids.
    for s in (-1.0, 1.0):  # flat inside, steep outside: the brows stay put
        w = np.exp(-(((v - ey) / (1.6 * sp.eye_h)) ** 4) - ((u - s * ex) / (1.25 * sp.eye_w)) ** 4)
        move("AU07", 0.0, -0.65 * (v - ey) * w)
    shade("AU07", -0.4 * both(lambda s: g(s * ex, ey + 1.7 * sp.eye_h, 0.85 * sp.eye_w, 0.03))
          - 0.3 * both(lambda s: g(s * ex, ey - 1.9 * sp.eye_h, 0.95 * sp.eye_w, 0.04)))

    # Nasolabial folds: from the nose wings down past the mouth corners.
    top, bot = sp.nose_y, my + 0.12
    tt = np.clip((v - top) / (bot - top), 0.0, 1.0)
    fold_u = sp.nose_w * 1.05 + (mw + 0.07 - sp.nose_w * 1.05) * tt**0.8
    folds = line(ua - fold_u, 0.03) * window(v, top, bot, 0.03)

    # AU10 upper lip raiser: upper lip and nose wings up, deep nasolabial folds, upper teeth show.
    move("AU10", 0.0, -0.08 * g(0.0, my - 0.6 * sp.upper_lip, 0.7 * mw, 0.09)
         - 0.035 * g(0.0, sp.nose_y, 0.22, 0.06))
    shade("AU10", -0.45 * folds - 0.25 * g(0.0, sp.nose_y - 0.12, 0.12, 0.03))
    upper_teeth = window(ua, -1.0, 0.6 * mw, 0.05) * window(v - mouth_v, -0.45 * sp.upper_lip, 0.006, 0.01)
    recolour("AU10", teeth_rgb, upper_teeth)

    # AU12 lip corner puller: corners out and up (smile), teeth, folds, raised cheek apples.
    for s in (-1.0, 1.0):
        w = g(s * mw, my, 0.14, 0.12)
        move("AU12", s * 0.09 * w, -0.1 * w)
    shade("AU12", -0.3 * folds + 0.15 * both(lambda s: g(s * 0.38, my - 0.22, 0.13, 0.09)))
    smile_teeth = (window(ua, -1.0, 0.75 * mw, 0.06)
                   * window(v - mouth_v, -0.35 * sp.upper_lip, 0.35 * sp.lower_lip, 0.012))
    recolour("AU12", teeth_rgb, smile_teeth)

    # AU14 dimpler: corners tucked in, deep dimples beside them.
    for s in (-1.0, 1.0):
        move("AU14", -s * 0.05 * g(s * mw, my, 0.08, 0.07), 0.0)
    shade("AU14", -0.6 * both(lambda s: g(s * (mw + 0.08), my - 0.01, 0.055, 0.07))
          - 0.15 * both(lambda s: g(s * (mw + 0.12), my - 0.1, 0.1, 0.12))
          + 0.25 * both(lambda s: g(s * (mw + 0.02), my - 0.09, 0.04, 0.045)))

    # AU15 lip corner depressor: corners down, folds below them.
    for s in (-1.0, 1.0):
        move("AU15", -s * 0.015 * g(s * mw, my, 0.1, 0.1), 0.11 * g(s * mw, my + 0.02, 0.11, 0.11))
    shade("AU15", -0.45 * both(lambda s: line(u - s * (mw + 0.04), 0.025)) * window(v, my + 0.03, my + 0.25, 0.03))

    # AU17 chin raiser: chin boss up pushing the lower lip up, mentalis crease and dimpled chin.
    move("AU17", 0.0, -0.09 * g(0.0, my + sp.lower_lip + 0.2, 0.22, 0.14))
    stipple = 0.5 + 0.5 * np.sin(u * 55.0) * np.sin(v * 55.0)
    shade("AU17", -0.5 * g(0.0, my + sp.lower_lip + 0.09, 0.18, 0.022)
          - 0.3 * stipple * g(0.0, my + sp.lower_lip + 0.26, 0.14, 0.07))

    # AU23 lip tightener: mouth narrower, red margins thinner and pale.
    for s in (-1.0, 1.0):
        move("AU23", -s * 0.09 * g(s * 0.8 * mw, my, 0.13, 0.1), 0.0)
    move("AU23", 0.0, -0.4 * (v - mouth_v) * g(0.0, my, 0.9 * mw, 0.08))
    recolour("AU23", skin_rgb, 0.75 * lips)

    # AU24 lip pressor: lips pressed flat together, skin bulging above and below, a dark closed line.
    move("AU24", 0.0, -0.7 * (v - mouth_v) * g(0.0, my, 0.95 * mw, 0.07))
    shade("AU24", 0.22 * g(0.0, my - sp.upper_lip - 0.05, 0.2, 0.035)
          + 0.22 * g(0.0, my + sp.lower_lip + 0.05, 0.2, 0.035)
          - 0.6 * line(v - mouth_v, 0.02) * window(ua, -1.0, mw, 0.03) - 0.2 * lips)


# ----------------------------------------------------------------------------------------------------------
# Rendering.


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]


@functools.lru_cache(maxsize=1)
def _gauss_table() -> np.ndarray:
    """The 65536 quantiles of the standard normal at (k + 0.5) / 65536: uniform uint16 -> N(0, 1)."""
    from scipy.special import ndtri

    return ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)


def gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 noise, 4x faster than `Generator.standard_normal`: random 16-bit codes
    looked up in a quantile table (a normal discretised to 65536 levels, tails cut at 4.2 sigma)."""
    n = int(np.prod(shape))
    codes = np.frombuffer(rng.bytes(2 * n), np.uint16)
    return _gauss_table()[codes].reshape(shape)


def render_frames(scene: Scene, delta_weights: np.ndarray, flow_weights: np.ndarray, light_level: np.ndarray,
                  noise_std: float, rng: np.random.Generator, jpeg_quality: int | None = None,
                  chunk: int = 50) -> np.ndarray:
    """Renders frames from a scene and per-frame weights.

    Args:
      scene: from `build_scene`.
      delta_weights: (T, N_DELTAS) weights of `scene.deltas` (AU intensities, centred pulse, eye closure).
      flow_weights: (T, N_FLOWS) weights of `scene.flows` (AU intensities, respiration, head x / y in
        pixels, head rotation in degrees).
      light_level: (T,) global light gain per frame.
      noise_std: Gaussian sensor noise, grey levels.
      rng: noise generator.
      jpeg_quality: JPEG-compress every frame at this quality (None: no compression).

    Returns:
      (T, S, S, 3) uint8 RGB frames.
    """
    t = len(light_level)
    size = scene.base.shape[0]
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
    d_mat = scene.deltas.reshape(N_DELTAS, -1)
    f_mat = scene.flows.reshape(N_FLOWS, -1)
    lit_background = scene.background * scene.light
    src = np.empty((size, size, 4), np.float32)
    src[..., 3] = scene.alpha
    out = np.empty((t, size, size, 3), np.uint8)
    for start in range(0, t, chunk):
        stop = min(t, start + chunk)
        n = stop - start
        colour = (np.asarray(delta_weights[start:stop], np.float32) @ d_mat).reshape(n, size, size, 3)
        disp = (np.asarray(flow_weights[start:stop], np.float32) @ f_mat).reshape(n, size, size, 2)
        noise = gaussian_noise(rng, (n, size, size, 3)) if noise_std > 0 else None
        for i in range(n):
            np.add(colour[i], scene.base, out=src[..., :3])
            w = cv2.remap(src, grid_x - disp[i, ..., 0], grid_y - disp[i, ..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
            # Composite over the background, light, noise, round.
            frame = w[..., :3] * scene.light + lit_background * (1.0 - w[..., 3:])
            frame *= np.float32(light_level[start + i])
            if noise is not None:
                frame += noise[i] * np.float32(noise_std)
            np.clip(np.rint(frame, out=frame), 0, 255, out=frame)
            out[start + i] = frame
            if jpeg_quality is not None:
                out[start + i] = _jpeg(out[start + i], jpeg_quality)
    return out


# ----------------------------------------------------------------------------------------------------------
# Recordings.


def subject_id(subject_index: int, config: SyntheticConfig | None = None) -> str:
    """The subject id of a subject index, e.g. ``"S03"`` (``config`` is accepted for symmetry)."""
    del config
    return f"S{int(subject_index):02d}"


def recording_name(subject_index: int, video_index: int) -> str:
    """The recording name, e.g. ``"S03_V1"``."""
    return f"{subject_id(subject_index)}_V{int(video_index)}"


@dataclasses.dataclass
class Signals:
    """The per-frame signals of one video, before rendering (T frames).

    Attributes:
      bvp: (T,) PPG wave, about [0, 1.1]. resp: (T,) respiration wave, about [-1, 1], up = inhale.
      hr_bpm, rr_bpm: (T,) instantaneous rates. au_intensity: (T, 12) in [0, 1].
      blink: (T,) eye closure in [0, 1]. head: (T, 3) head x, y (pixels) and rotation (degrees).
      light: (T,) global light gain.
    """

    bvp: np.ndarray
    resp: np.ndarray
    hr_bpm: np.ndarray
    rr_bpm: np.ndarray
    au_intensity: np.ndarray
    blink: np.ndarray
    head: np.ndarray
    light: np.ndarray


def video_signals(subject_index: int, video_index: int, config: SyntheticConfig,
                  video: VideoParams | None = None) -> Signals:
    """The signals of one video (deterministic by seed, subject, video); no rendering."""
    if video is None:
        video = video_params(subject_params(subject_index, config.seed), subject_index, video_index, config)
    n, fps = config.num_frames, float(config.fps)
    r = _rng(config.seed, subject_index, video_index, 3)
    resp, rr = waveforms.resp_wave(r, n, fps, config.rr_range_bpm, config.rr_drift_bpm)
    bvp, hr = waveforms.pulse_wave(r, n, fps, config.hr_range_bpm, config.hr_drift_bpm, resp)
    au = waveforms.au_intensities(r, n, fps)
    blink = waveforms.blink_track(r, n, fps, config.blink_rate_hz * r.uniform(0.5, 1.5))
    head = np.stack([
        video.head_px * waveforms.smooth_noise(r, n, fps, 0.25),
        0.3 * video.head_px * waveforms.smooth_noise(r, n, fps, 0.1),
        video.head_deg * waveforms.smooth_noise(r, n, fps, 0.2),
    ], axis=1)
    light = video.light_level * (1.0 + video.illumination_drift * waveforms.smooth_noise(r, n, fps, 0.05))
    return Signals(bvp=bvp, resp=resp, hr_bpm=hr, rr_bpm=rr, au_intensity=au, blink=blink, head=head, light=light)


def frame_weights(signals: Signals) -> tuple[np.ndarray, np.ndarray]:
    """(T, N_DELTAS) delta weights and (T, N_FLOWS) flow weights of `render_frames` for some signals."""
    pulse = signals.bvp - np.mean(signals.bvp)
    delta_w = np.concatenate([signals.au_intensity, pulse[:, None], signals.blink[:, None]], axis=1)
    flow_w = np.concatenate([signals.au_intensity, signals.resp[:, None], signals.head], axis=1)
    return delta_w, flow_w


def generate_recording(subject_index: int, video_index: int, config: SyntheticConfig = SyntheticConfig()
                       ) -> Recording:
    """One synthetic video with its labels, deterministic by (config.seed, subject_index, video_index).

    Returns:
      A `Recording` named like ``"S03_V1"`` (subject ``"S03"``): frames (T, S, S, 3) uint8, bvp (PPG),
      resp, au (T, 12) {0, 1}, hr_bpm and rr_bpm (instantaneous), and `face_box`.
    """
    if not 0 <= subject_index < config.n_subjects or not 0 <= video_index < config.videos_per_subject:
        raise UserError(f"synthetic recording ({subject_index}, {video_index}) outside "
                        f"{config.n_subjects} subjects x {config.videos_per_subject} videos")
    subject = subject_params(subject_index, config.seed)
    video = video_params(subject, subject_index, video_index, config)
    signals = video_signals(subject_index, video_index, config, video)
    scene = build_scene(subject, video, config.frame_size, config.au_strength)
    delta_w, flow_w = frame_weights(signals)
    frames = render_frames(scene, delta_w, flow_w, signals.light, video.noise_std,
                           _rng(config.seed, subject_index, video_index, 4),
                           config.jpeg_quality if config.compression else None)
    name = recording_name(subject_index, video_index)
    return Recording(
        name=name, subject=subject_id(subject_index), frames=frames, fps=float(config.fps),
        bvp=signals.bvp.astype(np.float32), resp=signals.resp.astype(np.float32),
        au=waveforms.au_labels(signals.au_intensity), hr_bpm=signals.hr_bpm.astype(np.float32),
        rr_bpm=signals.rr_bpm.astype(np.float32), source=f"synthetic:{name}(seed={config.seed})",
        face_box=scene.face_box,
    )


def iter_recordings(config: SyntheticConfig = SyntheticConfig(),
                    subjects: Sequence[str] | None = None) -> Iterator[Recording]:
    """Every recording (subject-major order), generated lazily; optionally only those of `subjects` ids."""
    keep = None if subjects is None else set(subjects)
    for s in range(config.n_subjects):
        if keep is not None and subject_id(s) not in keep:
            continue
        for v in range(config.videos_per_subject):
            yield generate_recording(s, v, config)


def subject_splits(config: SyntheticConfig = SyntheticConfig()) -> dict[str, list[str]]:
    """Subject-independent "train" / "validation" / "test" subject ids, deterministic by seed.

    With n subjects, round(n * test_fraction) and round(n * val_fraction) subjects (at least one each
    when the fraction is > 0 and n >= 3) are held out; the rest train. Default 12 subjects: 8 / 2 / 2.
    """
    n = config.n_subjects
    order = _rng(config.seed, 0, 0, 5).permutation(n)

    def count(frac):
        k = int(round(n * frac))
        return max(k, 1) if frac > 0 and n >= 3 else k

    n_test = count(config.test_fraction)
    n_val = count(config.val_fraction)
    n_test = min(n_test, max(n - 1, 0))
    n_val = min(n_val, max(n - 1 - n_test, 0))
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return {name: [subject_id(i) for i in sorted(idx)]
            for name, idx in (("train", train), ("validation", val), ("test", test))}


# ----------------------------------------------------------------------------------------------------------
# Files and plots.


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write_text(path: Path, text: str) -> None:
    """Writes a text file via a temporary file renamed at the end (ordinary permissions, not 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def label_table(rec: Recording) -> list[list]:
    """The rows of a recording's label CSV (without the header `CSV_COLUMNS` + face box columns)."""
    t = rec.num_frames
    box = rec.face_box if rec.face_box is not None else ("", "", "", "")

    def col(x):
        return np.full(t, np.nan) if x is None else np.asarray(x, np.float64)

    bvp, resp, hr, rr = col(rec.bvp), col(rec.resp), col(rec.hr_bpm), col(rec.rr_bpm)
    au = np.full((t, len(AU_NAMES)), np.nan) if rec.au is None else np.asarray(rec.au)
    rows = []
    for i in range(t):
        rows.append([i, f"{i / rec.fps:.4f}", f"{bvp[i]:.6f}", f"{resp[i]:.6f}", f"{hr[i]:.3f}", f"{rr[i]:.3f}",
                     *("" if np.isnan(x) else int(x) for x in au[i]), *box])
    return rows


def write_files(rec: Recording, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Writes ``<name>.mp4`` (lossless H.264) and ``<name>.csv`` into `out_dir`, each atomically.

    The CSV has one row per frame with columns ``frame,time_s,bvp,resp,hr_bpm,rr_bpm,AU01..AU24`` and
    ``face_x,face_y,face_w,face_h`` (the constant face box), the layout `bigsmall_jax.datasets`'s
    "generic" reader reads back.

    Returns:
      (mp4 path, csv path).
    """
    from bigsmall_jax.datasets.video_io import write_video

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise file_error(out, f"cannot create the output folder ({e.strerror})") from None
    mp4, csv_path = out / f"{rec.name}.mp4", out / f"{rec.name}.csv"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, "face_x", "face_y", "face_w", "face_h"])
    writer.writerows(label_table(rec))
    write_video(mp4, rec.frames, rec.fps, lossless=True)
    _atomic_write_text(csv_path, buf.getvalue())
    return mp4, csv_path


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_contact_sheet(recs: Sequence[Recording], path_png: str | os.PathLike, frames_per_video: int = 5,
                       max_videos: int = 12) -> Path:
    """A PNG grid: one row per recording (up to `max_videos`), `frames_per_video` frames evenly spaced,
    each titled with its time and active AUs, the face box drawn on the first."""
    from bigsmall_jax.evaluation.plots import save_png

    recs = list(recs)[:max_videos]
    if not recs:
        raise UserError("save_contact_sheet: no recordings")
    cols = frames_per_video
    fig = _figure(1.6 * cols, 1.75 * len(recs))
    axes = fig.subplots(len(recs), cols, squeeze=False)
    for r, rec in enumerate(recs):
        idx = np.linspace(0, rec.num_frames - 1, cols).round().astype(int)
        for c, i in enumerate(idx):
            ax = axes[r, c]
            frame = rec.frames[i]
            if c == 0 and rec.face_box is not None:
                frame = frame.copy()
                x, y, w, h = rec.face_box
                cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), (0, 255, 0), 1)
            ax.imshow(frame, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            active = [n[2:] for n, on in zip(AU_NAMES, rec.au[i], strict=True) if on == 1] if rec.au is not None else []
            ax.set_title(f"{rec.name} {i / rec.fps:.1f}s\nAU " + (",".join(active) or "-"), fontsize=6)
    return save_png(fig, path_png)


def save_label_plot(rec: Recording, path_png: str | os.PathLike, seconds: float = 12.0) -> Path:
    """A PNG of a recording's labels: pulse with the skin's mean green, respiration, rates and the AU raster."""
    from bigsmall_jax.evaluation.plots import save_png

    t = np.arange(rec.num_frames) / rec.fps
    show = t <= seconds
    fig = _figure(9.0, 9.0)
    ax = fig.subplots(4, 1, height_ratios=[1, 1, 0.8, 1.3])
    if rec.bvp is not None:
        ax[0].plot(t[show], _unit(rec.bvp)[show], lw=1.0, label="bvp (PPG label)")
        if rec.face_box is not None:
            x, y, w, h = rec.face_box
            green = rec.frames[:, y:y + h, x:x + w, 1].reshape(rec.num_frames, -1).mean(1)
            ax[0].plot(t[show], -_unit(_detrend(green, rec.fps))[show], lw=1.0, alpha=0.8,
                       label="-(face-box mean green), detrended")
        ax[0].legend(fontsize=7, loc="upper right")
    ax[0].set_title(f"{rec.name}: pulse (first {seconds:g} s)", fontsize=9)
    if rec.resp is not None:
        ax[1].plot(t, rec.resp, lw=1.0, color="tab:green")
    ax[1].set_title("respiration (up = inhale)", fontsize=9)
    if rec.hr_bpm is not None:
        ax[2].plot(t, rec.hr_bpm, label="HR (beats/min)", color="tab:red")
    if rec.rr_bpm is not None:
        ax[2].plot(t, rec.rr_bpm, label="RR (breaths/min)", color="tab:green")
    ax[2].legend(fontsize=7, loc="center right")
    ax[2].set_title("instantaneous rates", fontsize=9)
    if rec.au is not None:
        ax[3].imshow(np.asarray(rec.au).T, aspect="auto", interpolation="nearest", cmap="Greys",
                     extent=(0, t[-1] if len(t) else 1, len(AU_NAMES) - 0.5, -0.5), vmin=0, vmax=1)
        ax[3].set_yticks(range(len(AU_NAMES)), AU_NAMES, fontsize=7)
        ax[3].set_title("AU labels (black = on)", fontsize=9)
    ax[3].set_xlabel("time (s)")
    return save_png(fig, path_png)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    s = x.std()
    return (x - x.mean()) / s if s > 0 else x - x.mean()


def _detrend(x: np.ndarray, fps: float, window_s: float = 1.5) -> np.ndarray:
    """x minus its moving average over `window_s` (removes light drift and respiration, keeps the pulse)."""
    k = max(1, int(round(window_s * fps)))
    pad = np.pad(np.asarray(x, np.float64), (k // 2, k - 1 - k // 2), mode="edge")
    return x - np.convolve(pad, np.ones(k) / k, mode="valid")


# ----------------------------------------------------------------------------------------------------------
# Command line.


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    d = SyntheticConfig()
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.synthetic",
                                description="Write synthetic face videos (mp4) with per-frame labels (CSV).")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--n-subjects", type=int, default=d.n_subjects)
    p.add_argument("--videos-per-subject", type=int, default=d.videos_per_subject)
    p.add_argument("--duration", type=float, default=d.duration_s, help="seconds per video")
    p.add_argument("--fps", type=float, default=d.fps)
    p.add_argument("--frame-size", type=int, default=d.frame_size, help="pixels (square frames)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--compression", action="store_true", help="JPEG-compress every frame")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other SyntheticConfig field, e.g. --set noise_std=3 (repeatable)")
    return p.parse_args(argv)


def _config_from_args(args: argparse.Namespace) -> SyntheticConfig:
    fields = {f.name: f for f in dataclasses.fields(SyntheticConfig)}
    values: dict = dict(n_subjects=args.n_subjects, videos_per_subject=args.videos_per_subject,
                        duration_s=args.duration, fps=args.fps, frame_size=args.frame_size, seed=args.seed,
                        compression=args.compression)
    for item in args.set:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise UserError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(fields)}")
        default = getattr(SyntheticConfig(), key)
        try:
            if isinstance(default, bool):
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(raw)
                value = raw.lower() in ("true", "1")
            elif isinstance(default, tuple):
                value = tuple(float(x) for x in raw.split(","))
            else:
                value = type(default)(raw)
        except ValueError:
            raise UserError(f"--set {item!r}: cannot read {raw!r} as {type(default).__name__}") from None
        values[key] = value
    return SyntheticConfig(**values)


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    """Writes every synthetic video + label CSV, ``subjects.csv``, ``splits.csv``, a contact sheet and a
    label plot into ``--out``, then prints a JSON summary."""
    import json

    args = _parse(argv)
    config = _config_from_args(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise file_error(out, "exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    n = config.n_subjects * config.videos_per_subject
    sheet_recs: list[Recording] = []
    names: list[tuple[str, str]] = []
    frames = 0
    t0 = time.perf_counter()
    render_s = 0.0
    for rec in tqdm(_timed(iter_recordings(config)), total=n, desc="synthetic videos", unit="video"):
        rec, dt = rec
        render_s += dt
        write_files(rec, out)
        names.append((rec.name, rec.subject))
        frames += rec.num_frames
        if len(sheet_recs) < 12 and rec.name.endswith("_V0"):
            sheet_recs.append(_thin(rec, 5))
        if len(names) == 1:
            save_label_plot(rec, out / "labels.png")
    _atomic_write_text(out / "subjects.csv", "name,subject\n" + "".join(f"{a},{b}\n" for a, b in names))
    splits = subject_splits(config)
    _atomic_write_text(out / "splits.csv", "subject,split\n" + "".join(
        f"{s},{k}\n" for k, subs in splits.items() for s in subs))
    save_contact_sheet(sheet_recs, out / "contact_sheet.png", frames_per_video=5)
    wall = time.perf_counter() - t0
    log.info("rendered %d frames in %.1f s (%.0f frames/s); %.1f s in all with file writing",
             frames, render_s, frames / max(render_s, 1e-9), wall)
    print(json.dumps({"out": str(out), "videos": len(names), "frames": frames,
                      "render_frames_per_s": round(frames / max(render_s, 1e-9), 1),
                      "splits": splits, "config": dataclasses.asdict(config)}, indent=1))


def _timed(it: Iterator[Recording]) -> Iterator[tuple[Recording, float]]:
    while True:
        t = time.perf_counter()
        try:
            rec = next(it)
        except StopIteration:
            return
        yield rec, time.perf_counter() - t


def _thin(rec: Recording, k: int) -> Recording:
    """The recording with only `k` evenly spaced frames kept (for the contact sheet; labels kept aligned)."""
    idx = np.linspace(0, rec.num_frames - 1, k).round().astype(int)
    fps = rec.fps * (k - 1) / max(rec.num_frames - 1, 1) if k > 1 else rec.fps
    return dataclasses.replace(rec, frames=rec.frames[idx], au=None if rec.au is None else rec.au[idx], fps=fps,
                               bvp=None, resp=None, hr_bpm=None, rr_bpm=None)


if __name__ == "__main__":
    main()
