"""Dataset readers: raw videos and labels of each supported dataset as `Recording`s.

Every reader is registered in `READERS` under its name and has

- ``iter_recordings(root, subjects=None, ...) -> Iterator[Recording]``: the recordings under `root`, in
  sorted order, one at a time (a recording's frames are read only when it is reached); `subjects`
  restricts them to those subjects.
- ``list_subjects(root) -> list[str]``: the sorted subject ids, found from file names without reading
  any video.

Readers (layouts under `root`):

- ``bp4d_plus``: the BigSmall authors' preprocessed BP4D+, one MATLAB file per trial, ``F001_T1.mat``
  (subject ``F001``), holding ``X`` (frames) and per-frame labels ``bp_wave`` (blood pressure, the pulse
  wave), ``HR_bpm``, ``resp_wave``, ``resp_bpm``, ``AU01``..``AU39`` and the POS pseudo-PPG waves
  ``pos_bvp`` and ``pos_env_norm_bvp`` (into `Recording.extra`). 25 fps. ``X`` may be (T, H, W, 3),
  (T, 3, H, W) or MATLAB's (H, W, 3, T), uint8 or float (float in [0, 1] is scaled by 255), RGB. AU codes
  other than 0 and 1 (e.g. 9, "unknown") become NaN.
- ``ubfc_rppg``: ``subjectN/vid.avi`` + ``subjectN/ground_truth.txt`` (UBFC-rPPG DATASET_2: three rows,
  PPG, HR in beats/min, timestamps in s), or ``subjectN/gtdump.xmp`` (DATASET_1: comma-separated columns
  time in ms, HR, SpO2, PPG). Subject = the folder name.
- ``pure``: ``NN-MM/NN-MM/Image<ns>.png`` frames + ``NN-MM/NN-MM.json`` (``/FullPackage``: pulse-oximeter
  samples with ``Timestamp`` in ns and ``Value`` {``waveform``, ``pulseRate``}; ``/Image``: frame
  timestamps). Subject = ``NN``.
- ``generic``: any video file ``<stem>.mp4`` (or .avi, .mkv, ...) with an optional ``<stem>.csv`` of labels
  (columns among ``bvp``, ``resp``, ``hr_bpm``, ``rr_bpm`` and the AU names of `AU_NAMES`; ``frame`` and
  ``time_s`` are bookkeeping; ``face_x, face_y, face_w, face_h`` give a known face box; any other numeric
  column goes to `Recording.extra`). A CSV with one row per frame is used as is; otherwise it needs a
  ``time_s`` column and is resampled to the frame times (linear; nearest sample for AUs). The synthetic
  generator writes this layout. Subject: from ``subject_map``, else ``subjects.csv`` in `root` (columns
  ``name,subject``), else the file stem.

Labels are resampled to the frames by timestamp where a dataset's sensor runs on its own clock: linear
interpolation at each frame's time, the first/last sample held beyond the sensor's range (a warning is
logged when that is more than one second).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bigsmall_jax.datasets.recording import AU_NAMES, Recording
from bigsmall_jax.datasets.video_io import VIDEO_EXTENSIONS, list_image_files, read_video
from bigsmall_jax.errors import UserError, file_error

log = logging.getLogger(__name__)

BP4D_FPS = 25.0
# The repository's data/bp4d_plus_splits (a checkout or an editable install), else the copy a wheel installs.
_REPO_SPLITS = Path(__file__).resolve().parents[2] / "data" / "bp4d_plus_splits"
SPLITS_DIR = _REPO_SPLITS if _REPO_SPLITS.is_dir() else Path(__file__).resolve().parents[1] / "splits"


# ----------------------------------------------------------------------------------------------------------
# Shared helpers.


def _root(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise file_error(root, "dataset root is not a folder")
    return root


def _subject_filter(subjects: Iterable[str] | None) -> Callable[[str], bool]:
    if subjects is None:
        return lambda s: True
    if isinstance(subjects, str):
        subjects = [subjects]
    wanted = {str(s) for s in subjects}
    return lambda s: s in wanted


def _per_frame(values, name: str, t: int, path: object, allow_nan: bool = False) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------------------------
# BP4D+ (the authors' preprocessed .mat files).

_BP4D_NAME = re.compile(r"^([A-Za-z]+\d+)_(.+)$")


def _bp4d_subject(path: Path) -> str:
    m = _BP4D_NAME.match(path.stem)
    return m.group(1) if m else path.stem


def _load_mat(path: Path) -> dict:
    from scipy import io as sio

    try:
        return sio.loadmat(path)
    except NotImplementedError:  # MATLAB v7.3 (HDF5)
        try:
            import h5py  # noqa: F401
        except ImportError:
            raise file_error(path, "MATLAB v7.3 (HDF5) file; re-save it with `save -v7` or install h5py "
                                   "(not installed)") from None
        return _load_mat_h5(path)
    except Exception as e:  # noqa: BLE001 - scipy raises many types on bad files
        raise file_error(path, f"cannot read as a MATLAB file ({type(e).__name__}: {e})") from None


def _load_mat_h5(path: Path) -> dict:
    """MATLAB v7.3 via h5py (only when h5py is installed). HDF5 stores arrays transposed."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for key, ds in f.items():
            if isinstance(ds, h5py.Dataset):
                out[key] = np.asarray(ds).T
    return out


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


def read_bp4d_plus_mat(path: str | os.PathLike) -> Recording:
    """One BP4D+ trial file -> `Recording` (25 fps)."""
    path = Path(path)
    mat = _load_mat(path)
    if "X" not in mat:
        raise file_error(path, f"no frames 'X' (keys: {', '.join(k for k in sorted(mat) if not k.startswith('__'))})")
    frames = frames_to_u8(mat["X"], path)
    t = frames.shape[0]
    if t == 0:
        raise file_error(path, "video has no frames")

    def wave(key):
        return _per_frame(mat[key], key, t, path) if key in mat else None

    au_cols, missing = [], []
    for name in AU_NAMES:
        if name in mat:
            au_cols.append(au_codes_to_labels(_per_frame(mat[name], name, t, path, allow_nan=True)))
        else:
            missing.append(name)
            au_cols.append(np.full(t, np.nan, np.float32))
    if missing and len(missing) < len(AU_NAMES):
        log.warning("%s: no %s; those AUs are missing (NaN)", path, ", ".join(missing))
    au = np.stack(au_cols, axis=1) if len(missing) < len(AU_NAMES) else None
    extra = {k: wave(k) for k in ("pos_bvp", "pos_env_norm_bvp") if k in mat}
    return Recording(
        name=path.stem, subject=_bp4d_subject(path), frames=frames, fps=BP4D_FPS,
        bvp=wave("bp_wave"), resp=wave("resp_wave"), au=au, hr_bpm=wave("HR_bpm"), rr_bpm=wave("resp_bpm"),
        source=str(path), extra=extra,
    )


def _bp4d_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*.mat") if p.is_file())


def bp4d_plus_subjects(root: str | os.PathLike) -> list[str]:
    """Sorted subject ids (``F001``, ``M003``, ...) of the trial files under `root`."""
    return sorted({_bp4d_subject(p) for p in _bp4d_files(_root(root))})


def bp4d_plus_recordings(root: str | os.PathLike, subjects: Iterable[str] | None = None) -> Iterator[Recording]:
    """The trials ``<root>/<subject>_<trial>.mat``, sorted by name, optionally only of `subjects`."""
    root = _root(root)
    keep = _subject_filter(subjects)
    files = [p for p in _bp4d_files(root) if keep(_bp4d_subject(p))]
    if not files:
        log.warning("%s: no BP4D+ .mat files%s", root, "" if subjects is None else " for these subjects")
    for p in files:
        yield read_bp4d_plus_mat(p)


def bp4d_fold_subjects(k: int, splits_dir: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """The paper's BP4D+ fold k (1, 2 or 3): ``{"train": [...], "test": [...]}`` subject ids."""
    splits_dir = Path(splits_dir) if splits_dir is not None else SPLITS_DIR
    if int(k) not in (1, 2, 3):
        raise UserError(f"BP4D+ fold must be 1, 2 or 3, got {k!r}")
    out = {}
    for part in ("Train", "Test"):
        path = splits_dir / f"Split{int(k)}_{part}_Subjects.csv"
        if not path.is_file():
            raise file_error(path, "BP4D+ split file not found")
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r and r[0].strip()]
        if not rows or rows[0][0].strip() != "subjects":
            raise file_error(path, "expected a header line 'subjects'")
        out[part.lower()] = [r[0].strip() for r in rows[1:]]
    return out


# ----------------------------------------------------------------------------------------------------------
# UBFC-rPPG.


def _ubfc_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and (d / "vid.avi").is_file())


def read_ubfc_ground_truth(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ppg, hr_bpm, times_s) of one UBFC-rPPG subject folder (DATASET_2 or DATASET_1 layout)."""
    gt2, gt1 = folder / "ground_truth.txt", folder / "gtdump.xmp"
    if gt2.is_file():
        try:
            data = np.loadtxt(gt2, ndmin=2)
        except ValueError as e:
            raise file_error(gt2, f"not a table of numbers ({e})") from None
        if data.shape[0] != 3:
            raise file_error(gt2, f"expected 3 rows (PPG, HR, time in s), got {data.shape[0]}")
        return data[0], data[1], data[2]
    if gt1.is_file():
        try:
            data = np.loadtxt(gt1, delimiter=",", ndmin=2)
        except ValueError as e:
            raise file_error(gt1, f"not comma-separated numbers ({e})") from None
        if data.shape[1] < 4:
            raise file_error(gt1, f"expected 4 columns (time ms, HR, SpO2, PPG), got {data.shape[1]}")
        return data[:, 3], data[:, 1], data[:, 0] / 1000.0
    raise file_error(folder, "no ground_truth.txt (or gtdump.xmp)")


def ubfc_rppg_subjects(root: str | os.PathLike) -> list[str]:
    """Sorted subject folder names (``subject1``, ...) that hold a ``vid.avi``."""
    return [d.name for d in _ubfc_dirs(_root(root))]


def ubfc_rppg_recordings(root: str | os.PathLike, subjects: Iterable[str] | None = None) -> Iterator[Recording]:
    """UBFC-rPPG subjects; the PPG and HR resampled to the video frames by timestamp."""
    root = _root(root)
    keep = _subject_filter(subjects)
    for d in _ubfc_dirs(root):
        if not keep(d.name):
            continue
        ppg, hr, times = read_ubfc_ground_truth(d)
        frames, fps = read_video(d / "vid.avi")
        t = frames.shape[0]
        gt_path = d / ("ground_truth.txt" if (d / "ground_truth.txt").is_file() else "gtdump.xmp")
        if ppg.size == t:  # one sample per frame: already aligned
            bvp = _per_frame(ppg, "PPG", t, gt_path)
            hr_bpm = _per_frame(hr, "HR", t, gt_path)
        else:
            rel = times - times[0]
            ft = np.arange(t) / fps
            bvp = resample_to_frames(rel, ppg, ft, "PPG", gt_path)
            hr_bpm = resample_to_frames(rel, hr, ft, "HR", gt_path)
        yield Recording(name=d.name, subject=d.name, frames=frames, fps=fps, bvp=bvp, hr_bpm=hr_bpm,
                        source=str(d / "vid.avi"))


# ----------------------------------------------------------------------------------------------------------
# PURE.

_PURE_NAME = re.compile(r"^(\d+)-(\d+)$")
_PURE_IMAGE = re.compile(r"(\d+)")


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
    return sorted({_PURE_NAME.match(d.name).group(1) for d in _pure_dirs(_root(root))})


def pure_recordings(root: str | os.PathLike, subjects: Iterable[str] | None = None) -> Iterator[Recording]:
    """PURE sessions ``NN-MM``; PPG and pulse rate resampled to the frame timestamps."""
    root = _root(root)
    keep = _subject_filter(subjects)
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
        order = np.argsort(pkg_ts)
        st = (pkg_ts[order] - image_ts[0]) * 1e-9
        bvp = resample_to_frames(st, wave[order], ft, "waveform", json_path)
        hr = resample_to_frames(st, rate[order], ft, "pulseRate", json_path)
        yield Recording(name=d.name, subject=subject, frames=frames, fps=float(fps), bvp=bvp, hr_bpm=hr,
                        source=str(img_dir))


# ----------------------------------------------------------------------------------------------------------
# Generic: video files + CSV labels.

_KNOWN = ("bvp", "resp", "hr_bpm", "rr_bpm")
_BOOKKEEPING = ("frame", "time_s")
_FACE_COLS = ("face_x", "face_y", "face_w", "face_h")
_AU_COL = re.compile(r"^AU\d+$")


def read_label_csv(path: Path) -> dict[str, np.ndarray]:
    """A CSV with a header -> {column: (N,) float64}; empty cells are NaN."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise file_error(path, f"cannot read ({e})") from None
    while rows and not any(c.strip() for c in rows[-1]):  # trailing blank lines
        rows.pop()
    if not rows:
        raise file_error(path, "CSV is empty (needs a header line)")
    header = [c.strip() for c in rows[0]]
    if len(header) == 1:  # one column: a blank line is an empty cell
        rows = [r if r else [""] for r in rows]
    if len(set(header)) != len(header):
        raise file_error(path, f"duplicate column names in {header}")
    cols: dict[str, list[float]] = {h: [] for h in header}
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise file_error(path, f"line {i} has {len(row)} fields, the header {len(header)}")
        for h, cell in zip(header, row, strict=True):
            cell = cell.strip()
            try:
                cols[h].append(float(cell) if cell else math.nan)
            except ValueError:
                raise file_error(path, f"line {i}, column {h!r}: not a number: {cell!r}") from None
    return {h: np.asarray(v, np.float64) for h, v in cols.items()}


def _generic_videos(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in _root(root).iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


def _subject_map(root: Path, subject_map: Mapping[str, str] | None) -> dict[str, str]:
    if subject_map is not None:
        return {str(k): str(v) for k, v in subject_map.items()}
    path = (root if root.is_dir() else root.parent) / "subjects.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"name", "subject"} <= set(reader.fieldnames):
            raise file_error(path, "expected columns 'name,subject'")
        return {r["name"].strip(): r["subject"].strip() for r in reader}


def generic_subjects(root: str | os.PathLike, subject_map: Mapping[str, str] | None = None) -> list[str]:
    """Sorted subject ids of the videos under `root` (see the module docstring for the mapping)."""
    root = Path(root)
    mapping = _subject_map(root, subject_map)
    return sorted({mapping.get(p.stem, p.stem) for p in _generic_videos(root)})


def generic_labels(table: dict[str, np.ndarray], t: int, fps: float, path: Path) -> dict:
    """Per-frame labels from a label table: `Recording` keyword arguments (bvp, resp, au, ..., extra)."""
    n = len(next(iter(table.values()))) if table else 0
    if n != t:
        if "time_s" not in table:
            raise file_error(path, f"{n} label rows but the video has {t} frames (add a time_s column to "
                                   "resample by time)")
        st, ft = table["time_s"], np.arange(t) / fps

        def col(name, nearest=False):
            return resample_to_frames(st, table[name], ft, name, path, nearest=nearest)
    else:
        def col(name, nearest=False):
            return _per_frame(table[name], name, t, path, allow_nan=nearest)

    out: dict = {"extra": {}}
    for name in _KNOWN:
        if name in table:
            out[name] = col(name)
    au_present = [a for a in AU_NAMES if a in table]
    if au_present:
        out["au"] = np.stack([au_codes_to_labels(col(a, nearest=True)) if a in table
                              else np.full(t, np.nan, np.float32) for a in AU_NAMES], axis=1)
    if all(c in table for c in _FACE_COLS):
        box = [table[c][0] for c in _FACE_COLS]
        if not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
            raise file_error(path, f"invalid face box {box}")
        out["face_box"] = tuple(int(round(v)) for v in box)
    for name in table:
        if name in _KNOWN or name in _BOOKKEEPING or name in _FACE_COLS or _AU_COL.match(name):
            continue
        out["extra"][name] = col(name)
    ignored = [c for c in table if _AU_COL.match(c) and c not in AU_NAMES]
    if ignored:
        log.debug("%s: ignoring AU columns outside AU_NAMES: %s", path, ignored)
    return out


def generic_recordings(root: str | os.PathLike, subjects: Iterable[str] | None = None,
                       subject_map: Mapping[str, str] | None = None,
                       fps: float | None = None) -> Iterator[Recording]:
    """Videos under `root` (or the single video file `root`) with their ``<stem>.csv`` labels, if any.

    Args:
      root: a folder of videos, or one video file.
      subjects: keep only these subjects.
      subject_map: video stem -> subject id (default: ``subjects.csv`` in the folder, else the stem).
      fps: override the containers' frame rates.
    """
    root = Path(root)
    if not root.exists():
        raise file_error(root, "no such file or folder")
    mapping = _subject_map(root, subject_map)
    keep = _subject_filter(subjects)
    videos = _generic_videos(root)
    if not videos:
        log.warning("%s: no video files (%s)", root, ", ".join(VIDEO_EXTENSIONS))
    for v in videos:
        subject = mapping.get(v.stem, v.stem)
        if not keep(subject):
            continue
        frames, video_fps = read_video(v, fps=fps)
        csv_path = v.with_suffix(".csv")
        labels: dict = {"extra": {}}
        if csv_path.is_file():
            labels = generic_labels(read_label_csv(csv_path), frames.shape[0], video_fps, csv_path)
        else:
            log.info("%s: no %s; recording without labels", v, csv_path.name)
        yield Recording(name=v.stem, subject=subject, frames=frames, fps=video_fps, source=str(v), **labels)


# ----------------------------------------------------------------------------------------------------------
# Registry.


class Reader(NamedTuple):
    """A dataset reader: ``iter_recordings(root, subjects=None, ...)`` and ``list_subjects(root)``."""

    iter_recordings: Callable[..., Iterator[Recording]]
    list_subjects: Callable[..., list[str]]


READERS: dict[str, Reader] = {
    "bp4d_plus": Reader(bp4d_plus_recordings, bp4d_plus_subjects),
    "ubfc_rppg": Reader(ubfc_rppg_recordings, ubfc_rppg_subjects),
    "pure": Reader(pure_recordings, pure_subjects),
    "generic": Reader(generic_recordings, generic_subjects),
}


def get_reader(name: str) -> Reader:
    """The reader registered as `name`; `UserError` listing the valid names otherwise."""
    if name not in READERS:
        raise UserError(f"unknown dataset {name!r}; valid: {', '.join(sorted(READERS))}")
    return READERS[name]


def iter_recordings(dataset: str, root: str | os.PathLike, **kwargs) -> Iterator[Recording]:
    """The recordings of dataset `dataset` (a `READERS` name) under `root`."""
    return get_reader(dataset).iter_recordings(root, **kwargs)


def list_subjects(dataset: str, root: str | os.PathLike) -> list[str]:
    """The sorted subject ids of dataset `dataset` under `root`."""
    return get_reader(dataset).list_subjects(root)
