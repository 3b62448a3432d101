"""Which frames the preprocessing recipe detects the face on, and the crop box of every frame.

`face_boxes` does it over a whole video (the modes of `PreprocessConfig.face_crop`); the streaming reader
(`bigsmall_jax.datasets.stream`) uses its parts block by block (`detection_frames`, `detect_enlarged`,
`first_box`, `boxes_from_detections`). The detectors themselves are in `bigsmall_jax.datasets.face`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from bigsmall_jax.datasets.face import NoFaceError, detect_face_box, enlarge_box, toolbox_face_box
from bigsmall_jax.errors import file_error

if TYPE_CHECKING:
    from bigsmall_jax.datasets.preprocess import PreprocessConfig

log = logging.getLogger(__name__)


def face_boxes(
    frames: np.ndarray,
    config: PreprocessConfig,
    source: str = "",
    known_box: Sequence[int] | None = None,
) -> np.ndarray:
    """The crop box of every frame.

    Args:
      frames: (T, H, W, 3) uint8 RGB.
      config: `face_crop`, `crop_every` and `enlarge` are used.
      source: file name for error messages.
      known_box: (x, y, w, h) tight face box for ``face_crop="box"`` (e.g. `Recording.face_box`); it is
        enlarged and squared like a detected one.

    Returns:
      (T, 4) int64 (x, y, w, h) per frame, after enlarge / square / clamp (``"none"``: the whole frame).

    Raises:
      UserError: no face (``"first"``: in frame 0; ``"every"``/``"median"``: in none of the detection
        frames; a detection frame without a face reuses the nearest successful detection, with a warning),
        or ``"box"`` without a known box.
    """
    t, h, w = frames.shape[:3]
    if config.face_crop in ("every", "median"):
        found = {i: box for i in detection_frames(t, config)
                 if (box := detect_enlarged(frames[i], i, config, source)) is not None}
    else:
        found = {0: first_box(frames[0], config, source, known_box)}
    return boxes_from_detections(found, t, h, w, config, source)


def detection_frames(t: int, config: PreprocessConfig) -> range:
    """The frames the face is detected on in modes "every" and "median": every `crop_every` from 0."""
    return range(0, t, config.crop_every)


def detect_enlarged(frame: np.ndarray, index: int, config: PreprocessConfig,
                    source: str = "") -> tuple[int, int, int, int] | None:
    """The enlarged, squared box of the face in one detection frame ("every" / "median"), or None (with a
    warning) when the cascade finds none."""
    h, w = frame.shape[:2]
    try:
        return enlarge_box(detect_face_box(frame, source, index), config.enlarge, h, w)
    except NoFaceError:
        log.warning("%s: no face in frame %d; using the nearest detection", source or "<frames>", index)
        return None


def first_box(frame: np.ndarray, config: PreprocessConfig, source: str = "",
              known_box: Sequence[int] | None = None) -> tuple[int, int, int, int]:
    """The one box of modes "none" (the whole frame), "box" (`known_box` enlarged) and "first" (detected on
    `frame`, frame 0)."""
    h, w = frame.shape[:2]
    if config.face_crop == "none":
        return 0, 0, w, h
    if config.face_crop == "box":
        if known_box is None:
            raise file_error(source or "<frames>", "face_crop='box' but the recording has no face_box")
        return enlarge_box(known_box, config.enlarge, h, w)
    if config.face_crop == "toolbox":
        return toolbox_face_box(frame, config.enlarge, source)
    return enlarge_box(detect_face_box(frame, source, 0), config.enlarge, h, w)


def boxes_from_detections(found: dict[int, tuple[int, int, int, int]], t: int, h: int, w: int,
                          config: PreprocessConfig, source: str = "") -> np.ndarray:
    """The (T, 4) int64 crop boxes from the boxes found on the detection frames.

    Args:
      found: {frame index: enlarged box} for the detection frames where a face was found ("every",
        "median"), or {0: `first_box`} for the other modes.
      t, h, w: frames, height and width of the video.
      config: `face_crop` and `crop_every` are used.

    Raises:
      UserError: "every" / "median" with no face on any detection frame.
    """
    mode = config.face_crop
    if mode not in ("every", "median"):
        return np.tile(np.array(found[0], np.int64), (t, 1))
    starts = list(detection_frames(t, config))
    if not found:
        raise NoFaceError(f"{source or '<frames>'}: no face found in any of frames {starts[:5]}"
                          f"{'...' if len(starts) > 5 else ''} (every {config.crop_every})")
    keys = np.array(sorted(found))
    if mode == "median":
        med = np.median(np.array([found[k] for k in keys], np.float64), axis=0)
        box = enlarge_box(med, 1.0, h, w)  # squared / clamped again after the median
        return np.tile(np.array(box, np.int64), (t, 1))
    out = np.empty((t, 4), np.int64)
    for i in starts:
        nearest = int(keys[np.argmin(np.abs(keys - i))])
        out[i : i + config.crop_every] = found[nearest]
    return out
