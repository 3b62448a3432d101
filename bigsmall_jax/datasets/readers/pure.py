"""PURE reader: image sequences with pulse-oximeter samples in a JSON file.

Layout under `root`: ``NN-MM/NN-MM/Image<ns>.png`` frames + ``NN-MM/NN-MM.json`` (``/FullPackage``:
pulse-oximeter samples with ``Timestamp`` in ns and ``Value`` {``waveform``, ``pulseRate``}; ``/Image``:
frame timestamps). Subject = ``NN``. Frames in file-name order.

Setting ``ppg_grid`` (a reader option, `OPTIONS`): "published" (default), as the rPPG-Toolbox's
``PURELoader``: the timestamps are ignored and the L samples are stretched over the T frames,
``np.interp(np.linspace(1, L, T), np.linspace(1, L, L), x)`` (first sample at the first frame, last at the
last); "timestamps": each frame gets the samples interpolated at its own time (``/Image`` timestamps, else
the nanoseconds in the file names), the end samples held outside the oximeter's range.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from bigsmall_jax.datasets.readers.common import Reader, dataset_root, resample_to_frames, subject_filter
from bigsmall_jax.datasets.recording import Recording
from bigsmall_jax.datasets.video_io import list_image_files, read_video
from bigsmall_jax.errors import UserError, file_error

_PURE_NAME = re.compile(r"^(\d+)-(\d+)$")
_PURE_IMAGE = re.compile(r"(\d+)")
OPTIONS: dict[str, tuple[str, ...]] = {"ppg_grid": ("published", "timestamps")}


def stretch_to_frames(values: np.ndarray, t: int) -> np.ndarray:
    """The toolbox's ``resample_ppg``: L samples stretched linearly over t frames, ends on ends."""
    n = values.shape[0]
    return np.interp(np.linspace(1, n, t), np.linspace(1, n, n), values)


def _pure_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and _PURE_NAME.match(d.name))


def _pure_json(path: Path) -> dict:
    if not path.is_file():
        raise file_error(path, "PURE label file not found")
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise file_error(path, f"not valid JSON ({e})") from None


def pure_subjects(root: str | os.PathLike) -> list[str]:
    """Sorted subject ids (``01``, ``02``, ...) of the ``NN-MM`` folders under `root`."""
    return sorted({_PURE_NAME.match(d.name).group(1) for d in _pure_dirs(dataset_root(root))})


def pure_recordings(root: str | os.PathLike, subjects: Iterable[str] | None = None,
                    ppg_grid: str = "published") -> Iterator[Recording]:
    """PURE sessions ``NN-MM``; PPG and pulse rate resampled to the frames (``ppg_grid``, see the module)."""
    if ppg_grid not in OPTIONS["ppg_grid"]:
        raise UserError(f"PURE setting ppg_grid={ppg_grid!r}: valid: {', '.join(OPTIONS['ppg_grid'])}")
    root = dataset_root(root)
    keep = subject_filter(subjects)
    for d in _pure_dirs(root):
        subject = _PURE_NAME.match(d.name).group(1)
        if not keep(subject):
            continue
        json_path = d / f"{d.name}.json"
        meta = _pure_json(json_path)
        img_dir = d / d.name
        if not img_dir.is_dir():
            raise file_error(img_dir, "PURE image folder not found")
        files = list_image_files(img_dir)
        if not files:
            raise file_error(img_dir, "no images")
        # Frame times: the /Image timestamps, else the nanoseconds in the file names.
        try:
            image_ts = np.array([e["Timestamp"] for e in meta.get("/Image", [])], np.float64)
            samples = meta["/FullPackage"]
            pkg_ts = np.array([e["Timestamp"] for e in samples], np.float64)
            wave = np.array([e["Value"]["waveform"] for e in samples], np.float64)
            rate = np.array([e["Value"]["pulseRate"] for e in samples], np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise file_error(json_path, f"unexpected PURE JSON layout ({type(e).__name__}: {e})") from None
        if image_ts.size != len(files):
            nums = [_PURE_IMAGE.findall(f.stem) for f in files]
            if not all(nums):
                raise file_error(json_path, f"{image_ts.size} /Image timestamps for {len(files)} images")
            image_ts = np.array([float(n[-1]) for n in nums])
        image_ts = np.sort(image_ts)
        if image_ts.size > 1 and np.any(np.diff(image_ts) <= 0):
            raise file_error(json_path, "image timestamps are not strictly increasing")
        ft = (image_ts - image_ts[0]) * 1e-9
        fps = (len(ft) - 1) / ft[-1] if len(ft) > 1 and ft[-1] > 0 else 30.0
        frames, _ = read_video(img_dir, fps=fps)
        if ppg_grid == "published":
            for name, values in (("waveform", wave), ("pulseRate", rate)):
                if values.size == 0:
                    raise file_error(json_path, "no /FullPackage samples")
                if not np.all(np.isfinite(values)):
                    raise file_error(json_path, f"label {name!r} has NaN/inf values")
            bvp, hr = stretch_to_frames(wave, len(files)), stretch_to_frames(rate, len(files))
        else:
            order = np.argsort(pkg_ts)
            st = (pkg_ts[order] - image_ts[0]) * 1e-9
            bvp = resample_to_frames(st, wave[order], ft, "waveform", json_path)
            hr = resample_to_frames(st, rate[order], ft, "pulseRate", json_path)
        yield Recording(name=d.name, subject=subject, frames=frames, fps=float(fps), bvp=bvp, hr_bpm=hr,
                        source=str(img_dir))


READER = Reader(pure_recordings, pure_subjects, options=OPTIONS)
