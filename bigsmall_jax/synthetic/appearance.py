"""Per-subject appearance (`subject_params`) and per-video nuisances (`video_params`), drawn from seeds.

Colours are RGB in grey levels (0-255) under unit light; positions and sizes in face units (see
`bigsmall_jax.synthetic.config`).
"""

from __future__ import annotations

import colorsys

import numpy as np

from bigsmall_jax.synthetic.config import REFERENCE_SIZE, SubjectParams, SyntheticConfig, VideoParams, rng

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
    r = rng(seed, subject_index, 1)
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
    r = rng(config.seed, subject_index, video_index, 2)
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
