"""What every dataset reader shares: the `Reader` pair, root and subject checks, per-frame labels and
resampling by timestamp, AU codes and frame arrays.

Labels are resampled to the frames by timestamp where a dataset's sensor runs on its own clock: linear
interpolation at each frame's time, the first/last sample held beyond the sensor's range (a warning is
logged when that is more than one second).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bigsmall_jax.datasets.recording import Recording
from bigsmall_jax.errors import file_error


class Reader(NamedTuple):
    """A dataset reader: ``iter_recordings(root, subjects=None, **options)`` and ``list_subjects(root)``.

    ``iter_recordings`` yields the recordings under `root` in sorted order, one at a time (a recording's
    frames are read only when it is reached); `subjects` restricts them to those subjects; `options` are
    the dataset's reader settings (`options`, name -> choices, the first the default).
    ``list_subjects`` gives the sorted subject ids, found from file names without reading any video.
    A reader that can read its trials one by one also has ``list_trials(root, subjects=None)`` (sorted
    trial ids) and ``read_trial(root, trial_id, **options)``: the builder then skips unreadable trials
    and can read them in worker processes.
    """

    iter_recordings: Callable[..., Iterator[Recording]]
    list_subjects: Callable[..., list[str]]
    list_trials: Callable[..., list[str]] | None = None
    read_trial: Callable[..., Recording] | None = None
    options: dict[str, tuple[str, ...]] = {}


def dataset_root(root: str | os.PathLike) -> Path:
    """`root` as a Path; `UserError` naming it when it is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise file_error(root, "dataset root is not a folder")
    return root


def subject_filter(subjects: Iterable[str] | None) -> Callable[[str], bool]:
    """A predicate on subject ids: True for those in `subjects` (one id or several; None: every id)."""
    if subjects is None:
        return lambda s: True
    if isinstance(subjects, str):
        subjects = [subjects]
    wanted = {str(s) for s in subjects}
    return lambda s: s in wanted


def per_frame(values, name: str, t: int, path: object, allow_nan: bool = False) -> np.ndarray:
    """A label as (T,) float64: squeezed, a single value broadcast, length and NaNs checked."""
    v = np.asarray(values, np.float64).reshape(-1)
    if v.size == 1 and t != 1:
        v = np.full(t, v[0])
    if v.size != t:
        raise file_error(path, f"label {name!r} has {v.size} values but the video has {t} frames")
    if not allow_nan and not np.all(np.isfinite(v)):
        raise file_error(path, f"label {name!r} has NaN/inf values (first at frame "
                               f"{int(np.flatnonzero(~np.isfinite(v))[0])})")
    return v


def au_codes_to_labels(codes: np.ndarray) -> np.ndarray:
    """AU occurrence codes -> float32 {0, 1}; any other code (9 = unknown, NaN, ...) -> NaN."""
    codes = np.asarray(codes, np.float64)
    return np.where((codes == 0) | (codes == 1), codes, np.nan).astype(np.float32)


# Seconds of video at either end that labels may leave uncovered (their end values are held there).
MAX_UNLABELLED_S = 1.0


def _span_problem(label_span: float, video_span: float) -> str | None:
    """Why timestamps spanning `label_span` seconds cannot belong to frames spanning `video_span`, or None.

    They may differ by a second or 10% (sampling grids, a label stream started early); more means a
    retimed video, a wrong frame rate, labels of part of the video or of another video, or times in other
    units: 1000x (800-1200x) is named as milliseconds.
    """
    if abs(label_span - video_span) <= max(MAX_UNLABELLED_S, 0.1 * video_span):
        return None
    ratio = label_span / video_span if video_span > 0 else math.inf
    hint = "; are they in milliseconds? (time_s must be seconds)" if 800 <= ratio <= 1200 else (
        " (a retimed video, a wrong frame rate, labels of only part of the video, or of another video)")
    return f"the label times span {label_span:.6g} s but the video {video_span:.6g} s{hint}"


def check_label_times(sample_times: np.ndarray, frame_times: np.ndarray, name: str, path: object) -> None:
    """Refuses label timestamps that do not fit the frames they are resampled to.

    Args:
      sample_times: (N,) label times (s), increasing.
      frame_times: (T,) frame times (s), index / fps.
      name: the label, for the message.

    Raises:
      UserError: spans that differ by more than a second and 10% (`_span_problem`: e.g. times in
        milliseconds, or a video retimed against its labels, which would use only part of them), or
        labels that leave more than `MAX_UNLABELLED_S` of the video uncovered (the rest would be made up
        by holding the end values).
    """
    st, ft = np.asarray(sample_times, np.float64), np.asarray(frame_times, np.float64)
    step = float(ft[1] - ft[0]) if ft.size > 1 else 0.0
    problem = _span_problem(float(st[-1] - st[0]), float(ft[-1] - ft[0]) + step)
    if problem is not None:
        raise file_error(path, f"{name!r}: {problem}")
    before, after = float(st[0] - ft[0]), float(ft[-1] - st[-1])
    if max(before, after) > MAX_UNLABELLED_S:
        raise file_error(path, f"{name!r}: the labels cover {st[0]:.2f}-{st[-1]:.2f} s but the frames span "
                               f"{ft[0]:.2f}-{ft[-1]:.2f} s; {max(before, 0) + max(after, 0):.2f} s of the video "
                               "have no label (trim the video to the labelled part)")


def check_frame_times(time_s: np.ndarray, fps: float, path: object) -> None:
    """Refuses a per-frame label table whose ``time_s`` column does not advance at the video's frame rate.

    Args:
      time_s: (T,) the column, one row per frame.
      fps: the video's frame rate (Hz).

    Raises:
      UserError: non-finite times, or a span unlike the frames' (`_span_problem`: milliseconds, a retimed
        video).
    """
    t = np.asarray(time_s, np.float64)
    if t.size < 2:
        return
    if not np.all(np.isfinite(t)):
        raise file_error(path, "'time_s' has NaN/inf values")
    problem = _span_problem(float(t[-1] - t[0]), (t.size - 1) / fps)
    if problem is not None:
        raise file_error(path, f"'time_s': {problem}")


def resample_to_frames(sample_times: np.ndarray, values: np.ndarray, frame_times: np.ndarray,
                       name: str, path: object, nearest: bool = False) -> np.ndarray:
    """Values sampled at `sample_times` (s, increasing) -> values at `frame_times` (s).

    Linear interpolation (or the nearest sample, for codes such as AUs), the end samples held outside
    the sampled range (at most `MAX_UNLABELLED_S`); NaN samples are a `UserError` unless `nearest` (codes
    may be missing). The times are checked against the frames first (`check_label_times`).
    """
    st = np.asarray(sample_times, np.float64)
    v = np.asarray(values, np.float64)
    if st.shape != v.shape or st.ndim != 1 or st.size == 0:
        raise file_error(path, f"{name!r}: {v.size} values but {st.size} timestamps")
    if not np.all(np.isfinite(st)) or np.any(np.diff(st) <= 0):
        raise file_error(path, f"{name!r}: timestamps are not finite and strictly increasing")
    if not nearest and not np.all(np.isfinite(v)):
        raise file_error(path, f"label {name!r} has NaN/inf values (first at sample "
                               f"{int(np.flatnonzero(~np.isfinite(v))[0])})")
    ft = np.asarray(frame_times, np.float64)
    check_label_times(st, ft, name, path)
    if not nearest:
        return np.interp(ft, st, v)
    idx = np.clip(np.searchsorted(st, ft), 1, st.size - 1) if st.size > 1 else np.zeros(ft.size, int)
    if st.size > 1:
        idx = np.where(np.abs(ft - st[idx - 1]) <= np.abs(st[idx] - ft), idx - 1, idx)
    return v[idx]


def frames_to_u8(x: np.ndarray, path: object) -> np.ndarray:
    """A frame array in any of the accepted layouts / types -> (T, H, W, 3) uint8.

    Layouts: (T, H, W, 3), (T, 3, H, W), (H, W, 3, T). Types: uint8; floats in [0, 1] (scaled by 255) or
    [0, 255]; other integers in [0, 255].
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise file_error(path, f"frames 'X' must be 4-D, got shape {x.shape}")
    if x.shape[-1] == 3:
        pass
    elif x.shape[1] == 3:
        x = np.transpose(x, (0, 2, 3, 1))
    elif x.shape[2] == 3:
        x = np.transpose(x, (3, 0, 1, 2))
    else:
        raise file_error(path, f"frames 'X' have no colour axis of size 3: shape {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.size == 0:
        raise file_error(path, "frames 'X' are empty")
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)):
            raise file_error(path, "frames 'X' have NaN/inf values")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 255:
            raise file_error(path, f"float frames 'X' range over [{lo:g}, {hi:g}], not [0, 1] or [0, 255]")
        scale = 255.0 if hi <= 1.0 else 1.0
        return np.ascontiguousarray(np.clip(np.rint(x * scale), 0, 255).astype(np.uint8))
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise file_error(path, f"integer frames 'X' range over [{lo}, {hi}], not [0, 255]")
        return np.ascontiguousarray(x.astype(np.uint8))
    raise file_error(path, f"frames 'X' have unsupported type {x.dtype}")
