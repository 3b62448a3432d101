"""BP4D+ reader: the release layout licensees receive, or one MATLAB file per trial, and the paper's folds.

Two layouts under `root`, told apart by a ``Physiology`` folder:

- The release (``2D+3D/<subject>.zip``, ``Physiology/``, ``AUCoding/``), read step for step as the
  published BigSmall loader reads it: `bigsmall_jax.datasets.readers.bp4d_release` (its
  `ReleaseOptions` are this reader's settings).
- ``F001_T1.mat`` (subject ``F001``), an intermediate some users made with the authors' script, holding
  ``X`` (frames) and per-frame labels ``bp_wave`` (blood pressure, the pulse wave), ``HR_bpm``,
  ``resp_wave``, ``resp_bpm``, ``AU01``..``AU39`` and the POS pseudo-PPG waves ``pos_bvp`` and
  ``pos_env_norm_bvp`` (into `Recording.extra`). ``X`` may be (T, H, W, 3), (T, 3, H, W) or MATLAB's
  (H, W, 3, T), uint8 or float (float in [0, 1] is scaled by 255), RGB. AU codes other than 0 and 1
  (e.g. 9, "unknown") become NaN.

25 fps. Trials are ``<subject>_<trial>`` in both layouts.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from scipy import io as sio

from bigsmall_jax.datasets.readers import bp4d_release
from bigsmall_jax.datasets.readers.common import (
    Reader,
    au_codes_to_labels,
    dataset_root,
    frames_to_u8,
    per_frame,
    subject_filter,
)
from bigsmall_jax.datasets.recording import AU_NAMES, Recording
from bigsmall_jax.errors import UserError, file_error

log = logging.getLogger(__name__)

BP4D_FPS = 25.0
# The repository's data/bp4d_plus_splits (a checkout or an editable install), else the copy a wheel installs.
_REPO_SPLITS = Path(__file__).resolve().parents[3] / "data" / "bp4d_plus_splits"
SPLITS_DIR = _REPO_SPLITS if _REPO_SPLITS.is_dir() else Path(__file__).resolve().parents[2] / "splits"


_BP4D_NAME = re.compile(r"^([A-Za-z]+\d+)_(.+)$")


def _bp4d_subject(path: Path) -> str:
    m = _BP4D_NAME.match(path.stem)
    return m.group(1) if m else path.stem


def _load_mat(path: Path) -> dict:
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
        return per_frame(mat[key], key, t, path) if key in mat else None

    au_cols, missing = [], []
    for name in AU_NAMES:
        if name in mat:
            au_cols.append(au_codes_to_labels(per_frame(mat[name], name, t, path, allow_nan=True)))
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
    """Sorted subject ids (``F001``, ``M003``, ...) of the trials under `root` (either layout)."""
    root = dataset_root(root)
    if bp4d_release.is_release(root):
        return bp4d_release.release_subjects(root)
    return sorted({_bp4d_subject(p) for p in _bp4d_files(root)})


def bp4d_plus_trials(root: str | os.PathLike, subjects: Iterable[str] | None = None) -> list[str]:
    """Sorted trial ids ``<subject>_<trial>`` under `root`, optionally only of `subjects`.

    Release layout: the AU-coded trials (`bp4d_release.release_trials`); else the ``.mat`` files.
    """
    root = dataset_root(root)
    if bp4d_release.is_release(root):
        return bp4d_release.release_trials(root, subjects)
    keep = subject_filter(subjects)
    return [p.stem for p in _bp4d_files(root) if keep(_bp4d_subject(p))]


def read_bp4d_plus_trial(root: str | os.PathLike, trial: str, progress: bool = False, **options) -> Recording:
    """One trial ``<subject>_<trial>`` of either layout; `options` are `bp4d_release.ReleaseOptions` fields."""
    root = Path(root)
    opts = bp4d_release.ReleaseOptions(**options)
    if bp4d_release.is_release(root):
        return bp4d_release.release_recording(root, trial, opts, progress=progress)
    if options:
        log.warning("%s: .mat layout; the settings %s apply to the release layout only", root, sorted(options))
    return read_bp4d_plus_mat(root / f"{trial}.mat")


def bp4d_plus_recordings(root: str | os.PathLike, subjects: Iterable[str] | None = None,
                         **options) -> Iterator[Recording]:
    """The trials under `root` (either layout), sorted by name, optionally only of `subjects`."""
    trials = bp4d_plus_trials(root, subjects)
    if not trials:
        log.warning("%s: no BP4D+ trials%s", root, "" if subjects is None else " for these subjects")
    for t in trials:
        yield read_bp4d_plus_trial(root, t, **options)


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


READER = Reader(bp4d_plus_recordings, bp4d_plus_subjects, bp4d_plus_trials, read_bp4d_plus_trial,
                bp4d_release.OPTION_CHOICES)
