"""Face detectors for live measurement and the detector study, and the box smoothing live use needs.

* ``haar`` (default, the paper's): OpenCV's frontal-face Haar cascade (`datasets.face.detect_face_box`),
  shipped in opencv-python-headless 4.x.
* ``hog``: dlib's HOG + linear SVM frontal face detector (`dlib.get_frontal_face_detector`), whose model is
  compiled into the library (nothing to download). Optional: ``pip install dlib-bin`` (the ``[detect]``
  extra); dlib 20 as a binary wheel. Its boxes are tighter than Haar's; they are scaled about their centre
  by `HOG_TO_HAAR_SIDE` so that the crop covers what the model saw in training (Haar boxes, enlarged 1.5x).

A detector is ``frame (H, W, 3) uint8 RGB -> (x, y, w, h) tight box of the largest face, or None``.
`BoxSmoother` averages boxes over time and ignores moves smaller than a dead band, so that detection
jitter does not shift the crop (a shifted crop is a jump in the Small branch's frame differences).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from bigsmall_jax.datasets.face import detect_face_box
from bigsmall_jax.errors import UserError

Box = tuple[int, int, int, int]
DETECTORS = ("haar", "hog")
# Median Haar side / HOG side over the detector study's sources (`benchmark.detectors`, 2026-11-30: 1.01 to
# 1.34 per source, synthetic and reference trees).
HOG_TO_HAAR_SIDE = 1.25


def haar(frame: np.ndarray) -> Box | None:
    """The largest face by OpenCV's Haar cascade (the paper's detector), or None."""
    try:
        return detect_face_box(frame)
    except UserError:
        return None


@functools.lru_cache(maxsize=1)
def _dlib_detector():
    try:
        import dlib
    except ImportError:
        raise UserError("the 'hog' face detector needs dlib: pip install dlib-bin (or bigsmall-jax[detect])") from None
    return dlib.get_frontal_face_detector()


def hog(frame: np.ndarray, upsample: int = 0) -> Box | None:
    """The largest face by dlib's HOG detector (`upsample`: image doublings, for faces under ~80 px), scaled
    by `HOG_TO_HAAR_SIDE` about its centre and kept inside the frame, or None."""
    rects = _dlib_detector()(np.ascontiguousarray(frame), upsample)
    if len(rects) == 0:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    h, w = frame.shape[:2]
    cx, cy = (r.left() + r.right() + 1) / 2, (r.top() + r.bottom() + 1) / 2
    half_w, half_h = HOG_TO_HAAR_SIDE * r.width() / 2, HOG_TO_HAAR_SIDE * r.height() / 2
    x0, y0 = max(0, int(round(cx - half_w))), max(0, int(round(cy - half_h)))
    x1, y1 = min(w, int(round(cx + half_w))), min(h, int(round(cy + half_h)))
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def make_detector(name: str) -> Callable[[np.ndarray], Box | None]:
    """The detector called `name` (one of `DETECTORS`); checks that its package is installed."""
    if name == "haar":
        return haar
    if name == "hog":
        _dlib_detector()
        return hog
    raise UserError(f"unknown face detector {name!r}; valid: {', '.join(DETECTORS)}")


class BoxSmoother:
    """Exponential moving average of boxes (centre and size) with a dead band.

    Args:
      alpha: weight of a new detection (1: no smoothing).
      deadband: the output moves only when the average moved by more than this fraction of the box side
        (centre or size) since the last output; smaller moves are detection jitter.
    """

    def __init__(self, alpha: float = 0.3, deadband: float = 0.1):
        if not (0 < alpha <= 1 and deadband >= 0):
            raise UserError(f"box smoothing needs 0 < alpha <= 1 and deadband >= 0, got {alpha}, {deadband}")
        self.alpha, self.deadband = alpha, deadband
        self.mean: np.ndarray | None = None  # (cx, cy, w, h)
        self.out: np.ndarray | None = None

    def update(self, box: Box) -> Box:
        x, y, w, h = (float(v) for v in box)
        new = np.array([x + w / 2, y + h / 2, w, h])
        self.mean = new if self.mean is None else (1 - self.alpha) * self.mean + self.alpha * new
        side = max(self.mean[2], self.mean[3])
        if self.out is None or np.max(np.abs(self.mean - self.out)) > self.deadband * side:
            self.out = self.mean.copy()
        cx, cy, w, h = self.out
        return int(round(cx - w / 2)), int(round(cy - h / 2)), int(round(w)), int(round(h))


__all__ = ["DETECTORS", "HOG_TO_HAAR_SIDE", "BoxSmoother", "haar", "hog", "make_detector"]
