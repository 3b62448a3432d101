"""Drawing primitives on the pixel grid of one video: face coordinates, soft shapes, textures, a canvas.

All images are float64 on an S x S pixel grid (S = frame size). Shapes are drawn from signed distances
in pixels (negative inside) turned into anti-aliased coverage in [0, 1]; soft features (blush, wrinkles,
motion weights) are Gaussians in face units (see `bigsmall_jax.synthetic.config`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import cv2
import numpy as np

from bigsmall_jax.synthetic.config import VideoParams


@dataclasses.dataclass(frozen=True)
class FaceGrid:
    """Pixel and face coordinates of every pixel of one video's frame.

    Attributes:
      xx, yy: (S, S) float64 pixel column and row.
      u, v: (S, S) float64 face coordinates, u = (x - cx) / a, v = (y - cy) / b.
      cx, cy: face centre in pixels. a, b: face half-width and half-height in pixels.
    """

    xx: np.ndarray
    yy: np.ndarray
    u: np.ndarray
    v: np.ndarray
    cx: float
    cy: float
    a: float
    b: float

    @property
    def size(self) -> int:
        """S, the frame size in pixels."""
        return self.xx.shape[0]

    def gauss(self, u0, v0, su, sv) -> np.ndarray:
        """(S, S) Gaussian bump of peak 1 at face position (u0, v0) with widths (su, sv) in face units."""
        return np.exp(-0.5 * (((self.u - u0) / su) ** 2 + ((self.v - v0) / sv) ** 2))


def face_grid(video: VideoParams, size: int) -> FaceGrid:
    """The `FaceGrid` of a `size` x `size` frame with the face placed as in `video`."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cx, cy, a, b = video.cx, video.cy, video.a, video.b
    return FaceGrid(xx=xx, yy=yy, u=(xx - cx) / a, v=(yy - cy) / b, cx=cx, cy=cy, a=a, b=b)


def both(fn: Callable[[float], np.ndarray]) -> np.ndarray:
    """A feature on both sides of the face: fn(-1.0) (image left) + fn(1.0) (image right)."""
    return fn(-1.0) + fn(1.0)


def line(dist: np.ndarray, width: float) -> np.ndarray:
    """A soft line of Gaussian profile (peak 1) across `dist`, both in face units."""
    return np.exp(-0.5 * (dist / width) ** 2)


def window(x: np.ndarray, lo: float, hi: float, soft: float = 0.02) -> np.ndarray:
    """A smooth 0..1 window that is 1 for x in [lo, hi], with ramps `soft` wide."""
    return np.clip((x - lo) / soft + 0.5, 0, 1) * np.clip((hi - x) / soft + 0.5, 0, 1)


def coverage(sd: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - sd, 0.0, 1.0)


def ellipse_sd(x, y, cx, cy, rx, ry, power: float = 2.0) -> np.ndarray:
    """Approximate signed distance in pixels to a (super)ellipse, measured along the ray from its centre."""
    dx, dy = x - cx, y - cy
    r = (np.abs(dx / rx) ** power + np.abs(dy / ry) ** power) ** (1.0 / power)
    dist = np.hypot(dx, dy)
    return np.where(r > 1e-6, dist * (r - 1.0) / np.maximum(r, 1e-6), -min(rx, ry))


class Canvas:
    """Premultiplied painter's-algorithm canvas that also tracks how much visible skin each pixel shows.

    Attributes:
      rgb: (S, S, 3) premultiplied colour, grey levels. alpha: (S, S) coverage.
      skin: (S, S) pulse weight of the visible skin (0 where no skin shows).
    """

    def __init__(self, size: int):
        self.rgb = np.zeros((size, size, 3), np.float64)
        self.alpha = np.zeros((size, size), np.float64)
        self.skin = np.zeros((size, size), np.float64)

    def paint(self, colour, mask: np.ndarray, skin: float | np.ndarray = 0.0) -> None:
        """Paints `colour` (RGB or (S, S, 3)) over the canvas with coverage `mask`, skin weight `skin`."""
        m = np.clip(mask, 0.0, 1.0)
        self.rgb = self.rgb * (1.0 - m[..., None]) + np.asarray(colour, np.float64) * m[..., None]
        self.alpha = self.alpha * (1.0 - m) + m
        self.skin = self.skin * (1.0 - m) + m * skin


def smooth_texture(seed: int, shape: tuple[int, int], blur: float) -> np.ndarray:
    """Zero-mean, unit-peak blurred noise image of `shape` (float32, fixed per seed); `blur` in pixels."""
    n = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), blur, borderType=cv2.BORDER_REFLECT)
    n -= n.mean()
    return n / max(float(np.abs(n).max()), 1e-6)


def sample(img: np.ndarray, u: np.ndarray, v: np.ndarray, extent: float) -> np.ndarray:
    """Samples a square texture spanning face coordinates [-extent, extent]^2 at (u, v) (bilinear)."""
    n = img.shape[0]
    mx = ((u + extent) / (2 * extent) * (n - 1)).astype(np.float32)
    my = ((v + extent) / (2 * extent) * (n - 1)).astype(np.float32)
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
