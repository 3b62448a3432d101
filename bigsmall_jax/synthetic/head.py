"""The 3D shape of head, neck and torso as a depth map, its surface normals, and a cluttered background.

Depth z is in pixels towards the camera, measured from the plane through the face centre. The head is an
ellipsoid (depth 0.85 of its half-width) with relief in face units: brow ridge, eye sockets, nose ridge
and tip, cheekbones, lips and chin. The neck and torso are cylinders behind it. Normals are the unit
(-dz/dx, -dz/dy, 1) in image axes (x right, y down, z towards the camera).
"""

from __future__ import annotations

import cv2
import numpy as np

from bigsmall_jax.synthetic.config import SubjectParams
from bigsmall_jax.synthetic.drawing import FaceGrid, both, coverage, ellipse_sd

HEAD_DEPTH = 0.85  # ellipsoid depth / face half-width


def face_relief(sp: SubjectParams, grid: FaceGrid) -> np.ndarray:
    """(S, S) relief added to the head ellipsoid, in face half-widths (+ towards the camera)."""
    g, u, v = grid.gauss, grid.u, grid.v
    nose_ridge = np.exp(-0.5 * (u / 0.07) ** 2) * np.clip((v - sp.eye_y + 0.05) / (sp.nose_y - sp.eye_y), 0, 1) ** 1.5
    nose_ridge *= v < sp.nose_y + 0.04
    relief = (0.32 * nose_ridge + 0.12 * g(0.0, sp.nose_y, 0.09, 0.06)
              + both(lambda s: 0.05 * g(s * sp.nose_w, sp.nose_y + 0.01, 0.07, 0.05))
              + 0.07 * np.exp(-0.5 * ((v - sp.brow_y) / 0.06) ** 2) * np.clip(1 - np.abs(u) / 0.8, 0, 1)
              - both(lambda s: 0.08 * g(s * sp.eye_dx, sp.eye_y, 0.17, 0.09))
              + both(lambda s: 0.06 * g(s * 0.45, sp.nose_y - 0.02, 0.16, 0.12))
              + 0.04 * g(0.0, sp.mouth_y, sp.mouth_w, 0.07)
              - 0.03 * g(0.0, sp.mouth_y + 0.17, 0.25, 0.05)
              + 0.05 * g(0.0, sp.mouth_y + 0.3, 0.25, 0.1))
    return relief


def body_depth(sp: SubjectParams, grid: FaceGrid) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) depth in pixels of the head, neck and torso (0 elsewhere) and (S, S) head weight in [0, 1]
    (1 on the head: what yaw and pitch turn)."""
    u, v, a, b = grid.u, grid.v, grid.a, grid.b
    taper = 1.0 - sp.chin_taper * np.clip(v, 0.0, 1.0) ** 2
    un = u / taper
    rr = un**2 + (v / 1.05) ** 2
    head_z = HEAD_DEPTH * a * np.sqrt(np.clip(1.0 - rr, 0.0, None))
    head = np.clip((1.0 - rr) / 0.08 + 0.5, 0.0, 1.0) * (v < 1.05)
    head_z = head_z + a * face_relief(sp, grid) * np.clip(1.0 - rr, 0, 1) ** 0.3
    neck_z = 0.7 * sp.neck_w * a * np.sqrt(np.clip(1.0 - (u / sp.neck_w) ** 2, 0.0, None)) - 0.35 * a
    xu = (grid.xx - grid.cx) / (2.15 * a)
    torso_z = 0.9 * a * np.sqrt(np.clip(1.0 - xu**2, 0.0, None)) - 0.9 * a
    neck = coverage(np.abs(u) * a - sp.neck_w * a) * (v > 0.3)
    torso = coverage(ellipse_sd(grid.xx, grid.yy, grid.cx, grid.cy + 2.45 * b, 2.15 * a, 1.15 * b, power=2.6))
    z = torso * torso_z
    z = z * (1 - neck) + neck * neck_z
    z = z * (1 - head) + head * head_z
    return z, head


def normals(z: np.ndarray, blur_px: float = 0.7) -> np.ndarray:
    """(S, S, 3) float64 unit normals of a depth map z (pixels), lightly smoothed."""
    zs = cv2.GaussianBlur(z.astype(np.float32), (0, 0), blur_px).astype(np.float64)
    dzdy, dzdx = np.gradient(zs)
    n = np.stack([-dzdx, -dzdy, np.ones_like(zs)], axis=-1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def relief_normals(relief_px: np.ndarray) -> np.ndarray:
    """(S, S, 3) change of the normal of a flat-ish surface by a small relief (pixels): (-dz/dx, -dz/dy, 0)."""
    dzdy, dzdx = np.gradient(relief_px)
    return np.stack([-dzdx, -dzdy, np.zeros_like(relief_px)], axis=-1)


def cluttered_background(r: np.random.Generator, size: int) -> np.ndarray:
    """(S, S, 3) float64 room background in grey levels under unit light: a wall with a slow shade gradient
    and fine texture, and 4-9 objects (shelves, frames, lamps, plants: boxes and ellipses with their own
    colours, texture and edges), slightly out of focus."""
    wall = r.uniform(90, 220) * (np.array([1.0, 1.0, 1.0]) + r.uniform(-0.12, 0.12, 3))
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = wall * (1.0 + r.uniform(-0.2, 0.2) * (xx - 0.5) + r.uniform(-0.25, 0.1) * (yy - 0.5))[..., None]
    for _ in range(int(r.integers(4, 10))):
        colour = r.uniform(20, 235, 3)
        x0, y0 = r.uniform(-0.2, 1.0, 2) * size
        w, h = r.uniform(0.08, 0.5, 2) * size
        if r.uniform() < 0.6:
            mask = ((xx * size > x0) & (xx * size < x0 + w) & (yy * size > y0) & (yy * size < y0 + h)).astype(float)
        else:
            mask = (((xx * size - x0) / (0.5 * w)) ** 2 + ((yy * size - y0) / (0.5 * h)) ** 2 < 1).astype(float)
        stripes = 1.0 + r.uniform(0, 0.15) * np.sin(2 * np.pi * (xx * r.uniform(3, 30) + yy * r.uniform(0, 10)))
        shade = (1.0 + r.uniform(-0.3, 0.3) * (yy - y0 / size)) * stripes
        img = img * (1 - mask[..., None]) + (colour * shade[..., None]) * mask[..., None]
    grain = r.standard_normal((size, size, 1)) * r.uniform(2, 6)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), max(0.6, 0.006 * size * r.uniform(0.5, 2)))
    return np.clip(img + grain, 0, 255).astype(np.float64)
