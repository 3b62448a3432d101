"""Rendering frames from a `Scene` and per-frame weights: warp, composite, light, noise, round, JPEG.

A frame costs two small matrix products (the weighted sums of `Scene.deltas` and `Scene.flows`), one
`cv2.remap` and a few array operations.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from scipy.special import ndtri

from bigsmall_jax.synthetic.config import N_DELTAS, N_FLOWS
from bigsmall_jax.synthetic.scene import Scene


def jpeg_round_trip(frame: np.ndarray, quality: int) -> np.ndarray:
    """(S, S, 3) uint8 RGB frame after JPEG encoding at `quality` (1..100) and decoding."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@functools.lru_cache(maxsize=1)
def _gauss_table() -> np.ndarray:
    """The 65536 quantiles of the standard normal at (k + 0.5) / 65536: uniform uint16 -> N(0, 1)."""
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
                out[start + i] = jpeg_round_trip(out[start + i], jpeg_quality)
    return out

