"""Rendering a physical scene (`physical.PhysicalScene`) driven by its signals into uint8 frames.

Per chunk of frames, the AU, pulse, blink and talking changes of albedo and relief and the displacement
field are matrix products over the active components; per frame, the normals become the key, fill and
half-vector cosines (one OpenCV colour transform), shading, highlight and the room behind mix on contiguous
planes, one `cv2.remap` moves the subject, and the camera applies its gain, shot and read noise, rounding
and a JPEG round trip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from bigsmall_jax.synthetic.render import gaussian_noise, jpeg_round_trip

if TYPE_CHECKING:
    from bigsmall_jax.synthetic.physical import Lighting, PhysicalScene, PhysicalSignals



def _rotation(roll_deg: np.ndarray, yaw_deg: np.ndarray, pitch_deg: np.ndarray) -> np.ndarray:
    """(T, 3, 3) head rotations matching the flows: yaw moves x by +z, pitch moves y by +z, roll as the
    classic flow (x' = x - psi y, y' = y + psi x)."""
    y, p, q = (np.deg2rad(np.asarray(a, np.float64)) for a in (yaw_deg, pitch_deg, roll_deg))
    n = len(y)
    ry = np.zeros((n, 3, 3))
    ry[:, 0, 0] = ry[:, 2, 2] = np.cos(y)
    ry[:, 0, 2], ry[:, 2, 0], ry[:, 1, 1] = np.sin(y), -np.sin(y), 1.0
    rp = np.zeros((n, 3, 3))
    rp[:, 1, 1] = rp[:, 2, 2] = np.cos(p)
    rp[:, 1, 2], rp[:, 2, 1], rp[:, 0, 0] = np.sin(p), -np.sin(p), 1.0
    rr = np.zeros((n, 3, 3))
    rr[:, 0, 0] = rr[:, 1, 1] = np.cos(q)
    rr[:, 0, 1], rr[:, 1, 0], rr[:, 2, 2] = -np.sin(q), np.sin(q), 1.0
    return rr @ rp @ ry


def _matmul_active(weights: np.ndarray, stack: np.ndarray) -> np.ndarray | None:
    """weights (n, K) @ stack (K, ...) over the components with any non-zero weight (None if none)."""
    active = np.flatnonzero(np.any(weights != 0, axis=0))
    if len(active) == 0:
        return None
    flat = stack.reshape(stack.shape[0], -1)[active]
    return (weights[:, active].astype(np.float32) @ flat).reshape(len(weights), *stack.shape[1:])


def _box(stack: np.ndarray) -> tuple[slice, slice]:
    """The (rows, cols) slices of the bounding box of a (K, S, S, ...) stack's non-zero pixels."""
    nz = np.any(stack != 0, axis=tuple(i for i in range(stack.ndim) if i not in (1, 2)))
    rows, cols = np.flatnonzero(nz.any(1)), np.flatnonzero(nz.any(0))
    if len(rows) == 0:
        return slice(0, 0), slice(0, 0)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _noise_bank(r: np.random.Generator, size: int, frames: int = 8, margin: int = 16) -> np.ndarray:
    """(frames, S + margin, S + margin, 3) standard normal noise; a frame's noise is a random crop of one."""
    return gaussian_noise(r, (frames, size + margin, size + margin, 3))


def render_physical(scene: PhysicalScene, sig: PhysicalSignals, light: Lighting, blood_pulse: float,
                    rng_noise: np.random.Generator, chunk: int = 8, out_size: int | None = None) -> np.ndarray:
    """(T, O, O, 3) uint8 RGB frames of a physical scene (S x S) driven by its signals.

    The albedo and relief changes are matrix products over a chunk of frames inside the bounding box of
    their non-zero pixels; per frame, one OpenCV colour transform turns the normals into the lights'
    cosines, and the shading, the highlight and the room behind are mixed on contiguous (S, S) planes
    (an OpenCV transform between different channel counts has no fast path). With `out_size` O > S the
    light reaching the sensor is resized (bilinear) to O x O before the camera adds noise and compresses
    (`physical.DETAIL_SIZE`); O = S by default.
    Sensor noise is a random crop of a small bank of noise frames.
    """
    t_all = len(sig.bvp)
    size = scene.albedo.shape[0]
    out_size = size if out_size is None else int(out_size)
    f32 = np.float32
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(f32)
    pulse = blood_pulse * (sig.bvp - sig.bvp.mean())
    albedo_w = np.concatenate([sig.au_intensity, pulse[:, None], -blood_pulse * sig.dbvp[:, None],
                               sig.blink[:, None], sig.talk[:, None]], axis=1)
    flow_w = np.concatenate([sig.au_intensity, sig.pose[:, 5:6], sig.pose[:, :5], sig.talk[:, None]], axis=1)
    rot = _rotation(sig.pose[:, 2], sig.pose[:, 3], sig.pose[:, 4])
    # Light directions in the head's frame: R^T L (the head turns against fixed lights and camera).
    view = rot[:, 2, :]
    key = rot.transpose(0, 2, 1) @ np.asarray(light.key_dir)
    fill = rot.transpose(0, 2, 1) @ np.asarray(light.fill_dir)
    half = key + view
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    # Per frame, (normal x, y, z, cavity) -> (key, fill, half-vector cosines, cavity).
    dots = np.zeros((t_all, 4, 4), f32)
    dots[:, 0, :3], dots[:, 1, :3], dots[:, 2, :3], dots[:, 3, 3] = key, fill, half, 1.0
    key_rgb, fill_rgb, amb = (np.asarray(c, f32) for c in (light.key_rgb, light.fill_rgb, light.ambient_rgb))
    lit_bg = cv2.split((scene.background * (0.55 * key_rgb + fill_rgb + amb)).astype(f32))
    a_rows, a_cols = _box(scene.albedo_deltas)
    a_deltas = np.ascontiguousarray(scene.albedo_deltas[:, a_rows, a_cols])
    r_rows, r_cols = _box(scene.relief_deltas)
    r_deltas = np.ascontiguousarray(scene.relief_deltas[:, r_rows, r_cols])
    spec_w = (scene.gloss * scene.alpha * 255.0).astype(f32)
    base4 = np.concatenate([scene.albedo, scene.alpha[..., None]], -1).astype(f32)  # RGB albedo, coverage
    normal4 = np.concatenate([scene.normals, scene.cavity[..., None]], -1).astype(f32)
    gain = (sig.light * sig.camera).astype(f32)
    read2, shot = f32(light.read_noise ** 2), f32(light.shot_noise)
    bank = _noise_bank(rng_noise, out_size)
    offsets = rng_noise.integers(0, bank.shape[1] - out_size + 1, size=(t_all, 3))
    out = np.empty((t_all, out_size, out_size, 3), np.uint8)
    n_squarings = int(np.log2(light.shininess))
    for start in range(0, t_all, chunk):
        sl = slice(start, min(t_all, start + chunk))
        n = sl.stop - sl.start
        albedo = np.repeat(base4[None], n, axis=0)
        d_albedo = _matmul_active(albedo_w[sl], a_deltas)
        if d_albedo is not None:
            albedo[:, a_rows, a_cols, :3] += d_albedo
        d_relief = _matmul_active(sig.au_intensity[sl], r_deltas)
        disp = _matmul_active(flow_w[sl], scene.flows)
        for i in range(n):
            t = sl.start + i
            nrm = normal4
            if d_relief is not None:
                nrm = normal4.copy()
                nrm[r_rows, r_cols] += d_relief[i]
            cos = cv2.max(cv2.transform(nrm, dots[t]), 0.0)
            k_cos, f_cos, spec, cav = cv2.split(cos)
            np.clip(cav, 0.1, 1.5, out=cav)
            for _ in range(n_squarings):
                spec *= spec
            spec *= spec_w
            spec[k_cos <= 0] = 0.0
            k_cos *= cav
            f_cos *= cav
            # Per colour plane: albedo x (key + fill + ambient irradiance) + the key light's highlight.
            planes = list(cv2.split(albedo[i]))
            for c in range(3):
                planes[c] *= key_rgb[c] * k_cos + fill_rgb[c] * f_cos + amb[c] * cav
                planes[c] += key_rgb[c] * spec
            src = cv2.merge(planes)
            if disp is not None:
                src = cv2.remap(src, grid_x - disp[i, ..., 0], grid_y - disp[i, ..., 1], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
            # Where the subject does not cover a pixel the room shows; the camera's gain scales both.
            *rgb, cover = cv2.split(src)
            uncovered = 1.0 - cover
            g = gain[t]
            frame = cv2.merge([(rgb[c] + lit_bg[c] * uncovered) * g[c] for c in range(3)])
            if out_size != size:
                frame = cv2.resize(frame, (out_size, out_size), interpolation=cv2.INTER_LINEAR)
            k, oy, ox = offsets[t]
            frame += bank[k % len(bank), oy:oy + out_size, ox:ox + out_size] * cv2.sqrt(read2 + shot * frame)
            np.clip(np.rint(frame, out=frame), 0, 255, out=frame)
            out[t] = frame
            if light.jpeg_quality is not None:
                out[t] = jpeg_round_trip(out[t], light.jpeg_quality)
    return out
