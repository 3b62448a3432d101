"""The scene of one video: the canonical subject image, its delta images and its displacement fields.

How a frame is made from a `Scene` (`bigsmall_jax.synthetic.render`): the canonical premultiplied RGBA
subject (`base`, `alpha`), drawn here from smooth signed-distance shapes (shoulders, neck, hair, ears, a
Lambert-shaded face with skin texture, brows, eyes, nose and lips), plus the per-frame weighted colour
changes (`deltas`: one per AU, the pulse and blinks), moved by the per-frame weighted displacement fields
(`flows`: one per AU, respiration, head motion), composited over the static background and lit.

The pulse delta darkens the skin as blood volume rises, in the rPPG colour ratio R:G:B = 0.3:1:0.6
(`RPPG_RGB`), most on cheeks and forehead, only on skin. On inhalation the head and shoulders move up
and the head scales slightly.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.synthetic.aus import AuInputs, draw_aus
from bigsmall_jax.synthetic.config import N_DELTAS, N_FLOWS, SubjectParams, VideoParams
from bigsmall_jax.synthetic.drawing import (
    Canvas,
    FaceGrid,
    both,
    coverage,
    ellipse_sd,
    face_grid,
    sample,
    smooth_texture,
)

RPPG_RGB = (0.3, 1.0, 0.6)  # relative pulse modulation of R, G, B


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


@dataclasses.dataclass(frozen=True)
class FaceLook:
    """The lit skin of the face, shared by the drawing steps (all (S, S) float64 unless noted).

    Attributes:
      un: u divided by the chin taper (the face's round coordinate across).
      lambert: Lambert term of the face ellipsoid, >= 0. shade: 0.6 + 0.45 * lambert.
      texture: skin texture in [-1, 1]. blush: cheek blush weight.
      face_rgb: (S, S, 3) shaded, textured, blushed skin colour.
    """

    un: np.ndarray
    lambert: np.ndarray
    shade: np.ndarray
    texture: np.ndarray
    blush: np.ndarray
    face_rgb: np.ndarray


def face_look(sp: SubjectParams, vp: VideoParams, grid: FaceGrid) -> FaceLook:
    """Shading of a face-like ellipsoid (Lambert + ambient), the skin texture and the blushed skin colour."""
    u, v = grid.u, grid.v
    lx, ly, lz = vp.light_dir
    taper = 1.0 - sp.chin_taper * np.clip(v, 0.0, 1.0) ** 2
    un = u / taper
    rr = np.clip(un**2 + v**2, 0.0, 1.0)
    lambert = np.clip(lx * un + ly * v + lz * np.sqrt(1.0 - rr), 0.0, None)
    shade = 0.6 + 0.45 * lambert
    texture = sample(smooth_texture(sp.texture_seed, (96, 96), 1.2), u, v, 1.6)
    blush = grid.gauss(-0.45, 0.2, 0.2, 0.15) + grid.gauss(0.45, 0.2, 0.2, 0.15)
    face_rgb = (np.asarray(sp.skin_rgb) * (shade * (1.0 + 0.035 * texture))[..., None]
                * (1.0 + 0.07 * blush[..., None] * np.array([0.6, -0.4, -0.4])))
    return FaceLook(un=un, lambert=lambert, shade=shade, texture=texture, blush=blush, face_rgb=face_rgb)


def paint_body(canvas: Canvas, sp: SubjectParams, vp: VideoParams, grid: FaceGrid, look: FaceLook) -> None:
    """Paints what lies behind and below the face: long hair, the neck, the torso and the ears."""
    xx, yy, u, v, cx, cy, a, b = grid.xx, grid.yy, grid.u, grid.v, grid.cx, grid.cy, grid.a, grid.b
    skin = np.asarray(sp.skin_rgb)
    if sp.hair_length > 0:  # long hair behind the head
        back = coverage(ellipse_sd(xx, yy, cx, cy - 0.05 * b, 1.2 * a, 1.12 * b))
        below = coverage((np.abs(u) - 1.2) * a) * coverage((v - sp.hair_length) * b) * (v > -0.3)
        canvas.paint(np.asarray(sp.hair_rgb) * 0.8, np.maximum(back, below))
    # Neck: skin, shadowed under the jaw.
    neck_half = sp.neck_w * a * (1.0 + 0.15 * np.clip(v - 0.8, 0.0, None))
    neck = coverage(np.abs(xx - cx) - neck_half) * coverage((0.3 - v) * b)
    neck_shade = 0.72 + 0.18 * np.clip((v - 1.0) / 0.6, 0.0, 1.0)
    canvas.paint(skin * (neck_shade * (1.0 + 0.03 * look.texture))[..., None], neck, skin=0.5)
    # Torso with a rounded neckline.
    torso = coverage(ellipse_sd(xx, yy, cx, cy + 2.45 * b, 2.15 * a, 1.15 * b, power=2.6))
    neckline = coverage(ellipse_sd(xx, yy, cx, cy + 1.32 * b, 1.1 * sp.neck_w * a, 0.28 * b))
    torso_shade = 0.95 - 0.25 * np.clip((v - 1.3) / 1.5, 0.0, 1.0) + 0.05 * vp.light_dir[0] * np.clip(u / 2.0, -1, 1)
    canvas.paint(np.asarray(sp.shirt_rgb) * torso_shade[..., None], torso * (1.0 - neckline))
    for side in (-1.0, 1.0):  # ears
        ear = coverage(ellipse_sd(xx, yy, cx + side * 0.97 * a, cy + 0.05 * b, 0.13 * a, 0.22 * b))
        inner = grid.gauss(side * 0.98, 0.05, 0.05, 0.1)
        canvas.paint(skin * (0.85 * (1.0 - 0.25 * inner))[..., None], ear, skin=0.6)


def paint_face_and_hair(canvas: Canvas, sp: SubjectParams, grid: FaceGrid, look: FaceLook) -> None:
    """Paints the face (pulse weight: cheeks and forehead) and the front hair: cap and side locks."""
    xx, yy, u, v, cx, cy, a, b = grid.xx, grid.yy, grid.u, grid.v, grid.cx, grid.cy, grid.a, grid.b
    face_r = np.sqrt(look.un**2 + v**2)
    face_sd = np.hypot(xx - cx, yy - cy) * (face_r - 1.0) / np.maximum(face_r, 1e-6)
    pulse_region = 0.55 + 0.45 * np.clip(look.blush / 0.8 + sp.pulse_forehead * grid.gauss(0.0, -0.55, 0.4, 0.2),
                                         0, 1)
    canvas.paint(look.face_rgb, coverage(face_sd), skin=pulse_region)
    # Front hair: the cap above the hairline (lower at the temples) and side locks.
    cap = coverage(ellipse_sd(xx, yy, cx, cy - 0.07 * b, 1.1 * a, 1.05 * b))
    above = coverage((v - (sp.hairline + 0.3 * u**2)) * b)
    sides = (coverage((np.abs(u) - 0.9) * -a) * coverage((v - min(sp.hair_length, 0.15)) * b)
             * (np.abs(u) < 1.15))
    strands = 1.0 + 0.12 * np.sin(u * 38.0 + 3.0 * look.texture) * np.clip(-v, 0, 1)
    hair_rgb = np.asarray(sp.hair_rgb) * ((0.75 + 0.35 * look.lambert) * strands)[..., None]
    canvas.paint(hair_rgb, np.maximum(cap * above, sides * cap))


def paint_brows(canvas: Canvas, sp: SubjectParams, grid: FaceGrid, look: FaceLook) -> None:
    """Paints the arched brows, thinning towards their outer ends."""
    u_abs, v, a, b = np.abs(grid.u), grid.v, grid.a, grid.b
    brow_mid = sp.brow_inner + 0.5 * sp.brow_len
    brow_v = sp.brow_y - sp.brow_arch * (1.0 - ((u_abs - brow_mid) / (0.5 * sp.brow_len)) ** 2)
    thick = sp.brow_thick * (1.0 - 0.45 * np.clip((u_abs - sp.brow_inner) / sp.brow_len, 0, 1))
    brow_sd = np.maximum((np.abs(v - brow_v) - 0.5 * thick) * b,
                         np.maximum(sp.brow_inner - u_abs, u_abs - sp.brow_inner - sp.brow_len) * a)
    brows = coverage(brow_sd)
    canvas.paint(np.asarray(sp.brow_rgb) * look.shade[..., None] * (1 + 0.1 * look.texture[..., None]), brows)


def paint_eye(canvas: Canvas, sp: SubjectParams, grid: FaceGrid, look: FaceLook, side: float) -> np.ndarray:
    """Paints one eye (`side` -1: image left, +1: right): almond opening with sclera, iris, pupil, lash
    line and lid crease. Returns its (S, S) opening coverage."""
    xx, yy, u, v, cx, cy, a, b = grid.xx, grid.yy, grid.u, grid.v, grid.cx, grid.cy, grid.a, grid.b
    p = (u - side * sp.eye_dx) / sp.eye_w
    q = (v - sp.eye_y) / sp.eye_h
    bulge = np.clip(1.0 - p**2, 0.0, None)
    sd = np.maximum(np.maximum((-bulge - q) * sp.eye_h * b, (q - 0.75 * bulge) * sp.eye_h * b),
                    (np.abs(p) - 1.0) * sp.eye_w * a)
    opening = coverage(sd)
    ex, ey = cx + side * sp.eye_dx * a, cy + (sp.eye_y + 0.1 * sp.eye_h) * b
    ri = 0.95 * sp.eye_h * b
    iris = coverage(np.hypot(xx - ex, yy - ey) - ri) * opening
    pupil = coverage(np.hypot(xx - ex, yy - ey) - 0.45 * ri) * opening
    canvas.paint(np.array([236.0, 230.0, 222.0]) * (0.8 + 0.15 * look.lambert)[..., None], opening)
    canvas.paint(np.asarray(sp.iris_rgb), iris)
    canvas.paint(np.array([15.0, 12.0, 12.0]), pupil)
    lash = coverage(np.abs(q + bulge) * sp.eye_h * b - 0.6) * coverage((np.abs(p) - 1.05) * sp.eye_w * a)
    canvas.paint(np.array([30.0, 24.0, 22.0]), lash)
    crease = np.exp(-0.5 * ((q + 1.9 * bulge + 0.35) / 0.25) ** 2) * (np.abs(p) < 1.1) * (1 - opening)
    canvas.rgb *= (1.0 - 0.12 * crease)[..., None]
    return opening


def paint_nose(canvas: Canvas, sp: SubjectParams, vp: VideoParams, grid: FaceGrid) -> None:
    """Shades the nose (bridge, tip highlight, alar wings) and paints the nostrils."""
    u, v, a, b = grid.u, grid.v, grid.a, grid.b
    lx = vp.light_dir[0]
    bridge = sum(np.exp(-0.5 * ((u - s * 0.1) / 0.03) ** 2) * (0.5 - 0.8 * s * lx)
                 * np.clip((v - sp.eye_y) / 0.1, 0, 1) * (v < sp.nose_y) for s in (-1.0, 1.0))
    wings = both(lambda s: np.exp(-0.5 * ((np.hypot((u - s * 0.8 * sp.nose_w) / 0.06,
                                                    (v - sp.nose_y) / 0.05) - 1.0) / 0.35) ** 2))
    under = grid.gauss(0.0, sp.nose_y + 0.07, 0.12, 0.025)
    tip = grid.gauss(0.0, sp.nose_y - 0.04, 0.06, 0.05)
    canvas.rgb *= (1.0 - 0.1 * bridge - 0.15 * wings - 0.12 * under + 0.06 * tip)[..., None]
    nostrils = both(lambda s: coverage(ellipse_sd(grid.xx, grid.yy, grid.cx + s * 0.075 * a,
                                                  grid.cy + (sp.nose_y + 0.025) * b, 0.045 * a, 0.022 * b)))
    canvas.paint(np.asarray(sp.skin_rgb) * 0.35, nostrils)


def paint_lips(canvas: Canvas, sp: SubjectParams, grid: FaceGrid, look: FaceLook) -> tuple[np.ndarray, np.ndarray]:
    """Paints the lips and the mouth line. Returns (lips coverage, v of the mouth line), both (S, S)."""
    u, v, a, b = grid.u, grid.v, grid.a, grid.b
    mw, my = sp.mouth_w, sp.mouth_y
    rel = np.clip(u / mw, -1.0, 1.0)
    inside_w = np.clip(1.0 - rel**2, 0.0, None)
    mouth_v = my + sp.mouth_curve * rel**2
    upper_top = mouth_v - sp.upper_lip * inside_w**0.6 * (1.0 - 0.25 * np.exp(-0.5 * (u / 0.05) ** 2))
    lower_bot = mouth_v + sp.lower_lip * inside_w**0.7
    lip_sd = np.maximum(np.maximum((upper_top - v) * b, (v - lower_bot) * b), (np.abs(u) - mw) * a)
    lips = coverage(lip_sd)
    lip_shade = np.where(v < mouth_v, 0.86, 1.0) * (1.0 + 0.1 * grid.gauss(0.0, my + 0.6 * sp.lower_lip, 0.12, 0.02))
    canvas.paint(np.asarray(sp.lip_rgb) * (look.shade * lip_shade)[..., None], lips, skin=0.8)
    mouth_line = coverage(np.abs(v - mouth_v) * b - 0.55) * coverage((np.abs(u) - 0.98 * mw) * a)
    canvas.paint(np.asarray(sp.lip_rgb) * 0.3, mouth_line)
    return lips, mouth_v


def blink_delta(sp: SubjectParams, grid: FaceGrid, look: FaceLook, base: np.ndarray,
                eye_open: np.ndarray) -> np.ndarray:
    """(S, S, 3) colour change of a full blink: the opening becomes lid skin with a lash line across."""
    u, v, b = grid.u, grid.v, grid.b
    closed = look.face_rgb * 0.9
    for side in (-1.0, 1.0):
        p = (u - side * sp.eye_dx) / sp.eye_w
        q = (v - sp.eye_y) / sp.eye_h
        line = coverage(np.abs(q - 0.45 * np.clip(1 - p**2, 0, None)) * sp.eye_h * b - 0.6) * (np.abs(p) < 1.0)
        closed = closed * (1.0 - 0.75 * line[..., None])
    return (closed - base) * eye_open[..., None]


def body_flows(vp: VideoParams, grid: FaceGrid) -> np.ndarray:
    """(4, S, S, 2) displacement fields (pixels): respiration (per unit wave), head x and y (per pixel)
    and head rotation (per degree, about the neck).

    The head (and more so the shoulders) rise on inhalation, the head scales slightly; random head motion
    moves the head fully and the torso by 35%.
    """
    xx, yy, cx, cy, b = grid.xx, grid.yy, grid.cx, grid.cy, grid.b
    flows = np.zeros((4, *xx.shape, 2))
    head = 1.0 / (1.0 + np.exp(-(cy + 1.15 * b - yy) / (0.1 * b)))
    amp = 0.5 * vp.resp_px
    flows[0, ..., 0] = vp.resp_scale * (xx - cx) * head
    flows[0, ..., 1] = -amp * (head + 1.6 * (1.0 - head)) + vp.resp_scale * (yy - cy) * head
    carry = head + 0.35 * (1.0 - head)
    flows[1, ..., 0] = carry
    flows[2, ..., 1] = carry
    px, py = cx, cy + 1.1 * b
    flows[3, ..., 0] = -(yy - py) * np.pi / 180.0 * head
    flows[3, ..., 1] = (xx - px) * np.pi / 180.0 * head
    return flows


def background_and_light(sp: SubjectParams, vp: VideoParams, grid: FaceGrid) -> tuple[np.ndarray, np.ndarray]:
    """(S, S, 3) static background (two colours mixed by a smooth pattern, fixed per subject) and (S, S, 3)
    static light gain (spatial gradient x white balance)."""
    xx, yy, size = grid.xx, grid.yy, grid.size
    pattern = smooth_texture(sp.texture_seed + 1, (12, 12), 1.5)
    pattern = cv2.resize(pattern, (size, size), interpolation=cv2.INTER_CUBIC)
    mix = np.clip(0.5 + 0.6 * pattern + 0.3 * (yy / size - 0.5), 0.0, 1.0)[..., None]
    background = np.asarray(sp.background_rgb) * (1 - mix) + np.asarray(sp.background2_rgb) * mix
    gx, gy = vp.light_gradient
    light = (1.0 + gx * (xx / size - 0.5) + gy * (yy / size - 0.5))[..., None] * np.asarray(vp.white_balance)
    return background, light


def face_box(grid: FaceGrid) -> tuple[int, int, int, int]:
    """(x, y, w, h) square face box, cheek to cheek, centred 0.2 b below the face centre (pixels)."""
    side = int(round(2.0 * grid.a))
    box_cy = grid.cy + 0.2 * grid.b
    return (int(round(grid.cx - side / 2.0)), int(round(box_cy - side / 2.0)), side, side)


def paint_subject(canvas: Canvas, sp: SubjectParams, vp: VideoParams, grid: FaceGrid, look: FaceLook
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paints the subject, back to front: body, face and hair, brows, both eyes, nose, lips.

    Returns:
      (eye openness, lips coverage, v of the mouth line), each (S, S).
    """
    paint_body(canvas, sp, vp, grid, look)
    paint_face_and_hair(canvas, sp, grid, look)
    paint_brows(canvas, sp, grid, look)
    eye_open = np.clip(sum(paint_eye(canvas, sp, grid, look, side) for side in (-1.0, 1.0)), 0.0, 1.0)
    paint_nose(canvas, sp, vp, grid)
    lips, mouth_v = paint_lips(canvas, sp, grid, look)
    return eye_open, lips, mouth_v


def build_scene(subject: SubjectParams, video: VideoParams, frame_size: int, au_strength: float = 1.0) -> Scene:
    """Draws the canonical subject and precomputes the per-video delta images and displacement fields."""
    sp, vp, size = subject, video, int(frame_size)
    grid = face_grid(vp, size)
    look = face_look(sp, vp, grid)
    canvas = Canvas(size)
    eye_open, lips, mouth_v = paint_subject(canvas, sp, vp, grid, look)
    base, alpha, skin_map = canvas.rgb, canvas.alpha, canvas.skin

    n_au = len(AU_NAMES)
    deltas = np.zeros((N_DELTAS, size, size, 3))
    flows = np.zeros((N_FLOWS, size, size, 2))
    au_inputs = AuInputs(grid=grid, subject=sp, base=base, skin_rgb=look.face_rgb * np.array([1.0, 0.97, 0.97]),
                         shading=np.clip(look.shade, 0.0, 1.0), lips=lips, mouth_v=mouth_v)
    draw_aus(deltas, flows, au_inputs, strength=au_strength)
    deltas[n_au] = -vp.pulse_amp * np.asarray(RPPG_RGB) * skin_map[..., None] * base
    deltas[n_au + 1] = blink_delta(sp, grid, look, base, eye_open)
    flows[n_au:] = body_flows(vp, grid)
    background, light = background_and_light(sp, vp, grid)
    f32 = np.float32
    return Scene(base=base.astype(f32), alpha=alpha.astype(f32), background=background.astype(f32),
                 light=light.astype(f32), deltas=deltas.astype(f32), flows=flows.astype(f32),
                 skin=skin_map.astype(f32), face_box=face_box(grid))
