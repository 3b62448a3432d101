"""Face geometry: the Haar-cascade face box, its enlargement to a square inside the frame, and cropping.

`bigsmall_jax.datasets.face_boxes` chooses which frames to detect on (the paper's recipe);
these are the per-frame pieces it and inference use.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np

from bigsmall_jax.errors import UserError


class NoFaceError(UserError):
    """The Haar cascade found no face where one was needed (the message names the file and the frame)."""


@functools.lru_cache(maxsize=1)
def _face_cascade() -> cv2.CascadeClassifier:
    path = getattr(getattr(cv2, "data", None), "haarcascades", "") + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise UserError(f"{path}: cannot load OpenCV's Haar face cascade (needs opencv-python-headless 4.x)")
    return cascade


def detect_face_box(frame: np.ndarray, source: str = "", frame_index: int | None = None) -> tuple[int, int, int, int]:
    """The largest face in one frame, by OpenCV's frontal-face Haar cascade.

    Args:
      frame: (H, W, 3) uint8 RGB.
      source: file name for the error message.
      frame_index: frame number for the error message.

    Returns:
      (x, y, w, h) in pixels, the detector's (tight) box, not enlarged.

    Raises:
      NoFaceError: no face found (naming `source` and the frame).
    """
    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    faces = _face_cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3, minSize=(30, 30))
    if len(faces) == 0:
        where = f"frame {frame_index}" if frame_index is not None else "the frame"
        raise NoFaceError(f"{source or '<frames>'}: no face found in {where} (try face_crop='none' for "
                          "pre-cropped video)")
    x, y, w, h = max((tuple(int(v) for v in f) for f in faces), key=lambda b: b[2] * b[3])
    return x, y, w, h


def toolbox_face_box(frame: np.ndarray, coef: float, source: str = "") -> tuple[int, int, int, int]:
    """The rPPG-Toolbox's face box of one frame (its 'HC' backend with the larger box), as its loaders crop.

    The cascade runs on the frame as given, with OpenCV's default settings (scale 1.1, 3 neighbours, no
    minimum size); OpenCV turns the 3-channel frame grey as if it were BGR, as the toolbox does with its
    RGB frames. Of several faces the widest wins. The box is grown by `coef` (x and y moved back by
    (coef - 1) / 2 of the width / height, not below 0), each value truncated toward 0, then clipped to the
    frame, so it is not square where it meets an edge.

    Args:
      frame: (H, W, 3) uint8 RGB.
      coef: the toolbox's LARGE_BOX_COEF (1.5 in its configs).
      source: file name for the error message.

    Returns:
      (x, y, w, h) of the crop, inside the frame.

    Raises:
      UserError: no face (the toolbox would fall back to a whole-frame box with width and height swapped).
    """
    faces = _face_cascade().detectMultiScale(np.ascontiguousarray(frame), scaleFactor=1.1, minNeighbors=3)
    if len(faces) == 0:
        raise NoFaceError(f"{source or '<frames>'}: no face found in frame 0 (face_crop='toolbox')")
    x, y, w, h = (float(v) for v in faces[int(np.argmax(np.asarray(faces)[:, 2]))])
    x, y = max(0.0, x - (coef - 1.0) / 2 * w), max(0.0, y - (coef - 1.0) / 2 * h)
    x, y, w, h = (int(v) for v in (x, y, coef * w, coef * h))  # the toolbox writes into an int32 array
    height, width = frame.shape[:2]
    return x, y, min(x + w, width) - x, min(y + h, height) - y


def enlarge_box(box: Sequence[float], enlarge: float, height: int, width: int) -> tuple[int, int, int, int]:
    """A box enlarged about its centre, made square (side: enlarge * max(w, h)) and kept inside the frame.

    The side is clipped to min(height, width); the square is then shifted (not shrunk) to lie inside the
    frame. Returns (x, y, side, side) ints.
    """
    x, y, w, h = (float(v) for v in box)
    side = int(round(enlarge * max(w, h)))
    side = max(1, min(side, height, width))
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    x0 = min(max(x0, 0), width - side)
    y0 = min(max(y0, 0), height - side)
    return x0, y0, side, side


def crop_frames(frames: np.ndarray, boxes: np.ndarray) -> list[np.ndarray] | np.ndarray:
    """Crops frame t to boxes[t] = (x, y, w, h).

    Returns a (T, h, w, 3) array when every box has the same size, else a list of (h_t, w_t, 3) crops.
    Crops are views into `frames` (no copy).
    """
    boxes = np.asarray(boxes)
    if len(boxes) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(boxes)} boxes")
    if np.all(boxes == boxes[:1]):
        x, y, bw, bh = (int(v) for v in boxes[0])
        return frames[:, y : y + bh, x : x + bw]
    return [f[int(y) : int(y) + int(bh), int(x) : int(x) + int(bw)] for f, (x, y, bw, bh) in zip(frames, boxes,
                                                                                                   strict=True)]


# ----------------------------------------------------------------------------------------------------------
# The reference recipe on whole arrays.
