"""What every dataset reader shares: the `Reader` pair, root and subject checks, per-frame labels and
resampling by timestamp, AU codes and frame arrays.

Labels are resampled to the frames by timestamp where a dataset's sensor runs on its own clock: linear
interpolation at each frame's time, the first/last sample held beyond the sensor's range (a warning is
logged when that is more than one second).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bigsmall_jax.datasets.recording import Recording
from bigsmall_jax.errors import file_error

log = logging.getLogger(__name__)


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


def resample_to_frames(sample_times: np.ndarray, values: np.ndarray, frame_times: np.ndarray,
                       name: str, path: object, nearest: bool = False) -> np.ndarray:
    """Values sampled at `sample_times` (s, increasing) -> values at `frame_times` (s).

    Linear interpolation (or the nearest sample, for codes such as AUs), the end samples held outside
    the sampled range; NaN samples are a `UserError` unless `nearest` (codes may be missing).
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
    outside = max(st[0] - ft[0], ft[-1] - st[-1], 0.0)
    if outside > 1.0:
        log.warning("%s: %r covers %.2f-%.2f s but the frames span %.2f-%.2f s; end values held",
                    path, name, st[0], st[-1], ft[0], ft[-1])
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
