"""BP4D+ as licensees receive it, read the way the published BigSmall loader reads it.

Layout under `root` (the release)::

  2D+3D/<subject>.zip                          JPEG frames <subject>/<trial>/<frame>.jpg, portrait (1392x1040)
  Physiology/<subject>/<trial>/<signal>.txt    1 kHz, one value a line (`PHYS_FILES`)
  AUCoding/AU_OCC/<subject>_<trial>.csv        frame number, then 34 occurrence columns (`OCC_AUS`)
  AUCoding/AU_INT/AUxx/<subject>_<trial>_AUxx.csv   frame number, intensity (AUs 6, 10, 12, 14, 17)

The recipe of the rPPG-Toolbox ``BP4DPlusBigSmallLoader`` (the BigSmall fold configs, 25 fps), step by step:

1. Trials: the AU-coded ones (T1, T6, T7, T8) listed under ``Physiology``; F041 T7 is left out.
2. Frames: the trial's JPEGs in the zip's stored order, decoded to RGB, the bottom W x W square of the
   portrait frame kept and resized to 144 x 144 (OpenCV INTER_AREA, uint8).
3. Physiology: each signal stretched over the N frames by linear interpolation (`ReleaseOptions`).
4. AU labels: the coded frame range from AU_OCC; every array is cut to it (the AU-subset crop).
5. POS pseudo-PPG on the cropped frames with a band around the trial's mean HR label, normalized by its
   Hilbert envelope (`pos_pseudo_ppg`): the pulse the paper trains on; the blood-pressure wave is the
   test pulse.
6. Label table (`LABEL_COLUMNS`, the loader's 49 columns): systolic BP clipped to [5, 250], diastolic to
   [5, 200], EDA to [1, 40]; AU codes mapped (`ReleaseOptions.au_codes`).

Where the published loader has a bug, the default reproduces it (the paper's numbers were made with it)
and a named `ReleaseOptions` setting gives the corrected behaviour. Only the cropped frames are decoded,
one at a time into one preallocated (N, 144, 144, 3) array, so a trial is held in memory once at 144 x 144.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from scipy import signal
from tqdm import tqdm

from bigsmall_jax.datasets.recording import AU_NAMES, Recording
from bigsmall_jax.errors import UserError, file_error
from bigsmall_jax.evaluation.signals import detrend
from bigsmall_jax.evaluation.unsupervised import pos

log = logging.getLogger(__name__)

FPS = 25.0
PHYS_HZ = 1000.0
FRAME_SIZE = 144
AU_TRIALS = ("T1", "T6", "T7", "T8")
EXCLUDED_TRIALS = frozenset({("F041", "T7")})
# (label name, file in Physiology/<subject>/<trial>/), in the loader's order.
PHYS_FILES: tuple[tuple[str, str], ...] = (
    ("bp_wave", "BP_mmHg.txt"), ("HR_bpm", "Pulse Rate_BPM.txt"), ("resp_wave", "Resp_Volts.txt"),
    ("resp_bpm", "Respiration Rate_BPM.txt"), ("mean_bp", "LA Mean BP_mmHg.txt"),
    ("systolic_bp", "LA Systolic BP_mmHg.txt"), ("diastolic_bp", "BP Dia_mmHg.txt"), ("eda", "EDA_microsiemens.txt"),
)
# The AUs of AU_OCC's columns 1..34, by position, and the AUs with an AU_INT intensity file.
OCC_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 23, 24, 27, 28,
                            29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39)
INT_AUS: tuple[int, ...] = (6, 10, 12, 14, 17)


def _au_columns() -> tuple[str, ...]:
    cols = []
    for au in OCC_AUS:
        cols.append(f"AU{au:02d}")
        if au in INT_AUS:
            cols.append(f"AU{au:02d}int")
    return tuple(cols)


AU_COLUMNS = _au_columns()
# The loader's label matrix, column by column (8..46 are the 39 AU columns).
LABEL_COLUMNS: tuple[str, ...] = ("bp_wave", "HR_bpm", "systolic_bp", "diastolic_bp", "mean_bp", "resp_wave",
                                  "resp_bpm", "eda", *AU_COLUMNS, "pos_bvp", "pos_env_norm_bvp")
CLIP_RANGES = {"systolic_bp": (5.0, 250.0), "diastolic_bp": (5.0, 200.0), "eda": (1.0, 40.0)}

# Each setting: (published behaviour, corrected behaviour); the first is the default.
OPTION_CHOICES: dict[str, tuple[str, ...]] = {
    "au_codes": ("published", "masked"),
    "phys_first_sample": ("drop", "keep"),
    "phys_grid": ("stretch", "clock"),
    "pos_halfband": ("published", "bpm"),
    "pos_last_frame": ("published", "windowed"),
}


@dataclasses.dataclass(frozen=True)
class ReleaseOptions:
    """Where the published loader has a bug: reproduce it (default) or correct it.

    Attributes:
      au_codes: "published": every AU value other than 1 becomes 0 (the loader's ``np.where(a) and
        np.where(b)`` keeps only the second condition), so unknown codes (9) count as "absent" and
        intensities 2..5 as 0; "masked": occurrence codes other than 0/1 become NaN (masked in the
        loss), intensities are kept.
      phys_first_sample: "drop": the first line of every physiology file is read as a CSV header and
        lost; "keep": every sample is read.
      phys_grid: "stretch": each signal is interpolated at ``linspace(0, L, N)`` over samples ``0..L-1``,
        a grid one sample too long (frame k at sample k*L/(N-1), the end held); "clock": frame k at
        its time, sample k * 1000 / 25 (1 kHz physiology, 25 fps video), the last sample held after the end.
      pos_halfband: "published": the POS band is the mean HR +- 20/fs Hz (0.8 Hz = 48 bpm at 25 fps, though
        the code says +-20 bpm); "bpm": +- 20 bpm (1/3 Hz). Both clipped to [0.7, 3.0] Hz.
      pos_last_frame: "published": the POS windows end one frame early, so the last frame is in none and
        its pseudo-PPG value is 0 before filtering; "windowed": the last window ends at the last frame
        (Wang et al.'s algorithm).
    """

    au_codes: str = "published"
    phys_first_sample: str = "drop"
    phys_grid: str = "stretch"
    pos_halfband: str = "published"
    pos_last_frame: str = "published"

    def __post_init__(self):
        for name, choices in OPTION_CHOICES.items():
            if getattr(self, name) not in choices:
                raise UserError(f"BP4D+ setting {name}={getattr(self, name)!r}: valid: {', '.join(choices)}")


# ----------------------------------------------------------------------------------------------------------
# Listing.


def is_release(root: str | os.PathLike) -> bool:
    """True when `root` has the release's ``Physiology`` folder (the `.mat` layout has none)."""
    return (Path(root) / "Physiology").is_dir()


def trial_id(subject: str, trial: str) -> str:
    return f"{subject}_{trial}"


def split_trial_id(tid: str) -> tuple[str, str]:
    subject, _, trial = tid.partition("_")
    return subject, trial


def release_trials(root: str | os.PathLike, subjects: Iterable[str] | None = None) -> list[str]:
    """The AU-coded trials ``<subject>_<trial>`` listed under ``Physiology``, sorted, optionally of `subjects`."""
    phys = Path(root) / "Physiology"
    wanted = None if subjects is None else {str(s) for s in ([subjects] if isinstance(subjects, str) else subjects)}
    out = []
    for sdir in sorted(d for d in phys.iterdir() if d.is_dir()):
        if wanted is not None and sdir.name not in wanted:
            continue
        for tdir in sorted(d for d in sdir.iterdir() if d.is_dir()):
            if tdir.name in AU_TRIALS and (sdir.name, tdir.name) not in EXCLUDED_TRIALS:
                out.append(trial_id(sdir.name, tdir.name))
    return out


def release_subjects(root: str | os.PathLike) -> list[str]:
    """Sorted subject ids with at least one AU-coded trial."""
    return sorted({split_trial_id(t)[0] for t in release_trials(root)})


# ----------------------------------------------------------------------------------------------------------
# Frames.


def zip_trial_entries(zip_path: Path, trial: str) -> list[str]:
    """The trial's ``.jpg`` entries (``<subject>/<trial>/<file>.jpg``) in the zip's stored order."""
    if not zip_path.is_file():
        raise file_error(zip_path, "frame archive not found")
    try:
        with zipfile.ZipFile(zip_path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise file_error(zip_path, f"cannot read as a zip archive ({e})") from None
    entries = [n for n in names if n.lower().endswith(".jpg") and len(n.split("/")) > 2 and n.split("/")[1] == trial]
    if not entries:
        raise file_error(zip_path, f"no frames for trial {trial} (no {zip_path.stem}/{trial}/*.jpg entries)")
    return entries


def bottom_square(frame: np.ndarray, source: object) -> np.ndarray:
    """The bottom W x W square of a portrait (H >= W) frame: ``frame[H - W:]``."""
    h, w = frame.shape[:2]
    if h < w:
        raise file_error(source, f"frame is {w}x{h} (landscape); the BP4D+ recipe expects portrait frames")
    return frame[h - w:]


def read_zip_frames(zip_path: Path, entries: list[str], size: int = FRAME_SIZE, progress: bool = False) -> np.ndarray:
    """Decodes `entries` of a zip one at a time: RGB, bottom square, INTER_AREA to `size`.

    Returns:
      (len(entries), size, size, 3) uint8; no full-size frame is kept beyond its own decode.
    """
    out = np.empty((len(entries), size, size, 3), np.uint8)
    try:
        with zipfile.ZipFile(zip_path) as z:
            for i, name in enumerate(tqdm(entries, desc=f"read {zip_path.name}", unit="frame", leave=False,
                                          disable=not progress)):
                bgr = cv2.imdecode(np.frombuffer(z.read(name), np.uint8), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise file_error(f"{zip_path}:{name}", "cannot decode as JPEG")
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                out[i] = cv2.resize(bottom_square(rgb, f"{zip_path}:{name}"), (size, size),
                                    interpolation=cv2.INTER_AREA)
    except (zipfile.BadZipFile, OSError, KeyError) as e:
        raise file_error(zip_path, f"cannot read the frames ({type(e).__name__}: {e})") from None
    return out


# ----------------------------------------------------------------------------------------------------------
# Physiology.


def read_signal(path: Path, first_sample: str = "drop") -> np.ndarray:
    """One physiology file, one value a line -> (L,) float64 (the first line dropped with "drop")."""
    if not path.is_file():
        raise file_error(path, "physiology file not found")
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=1, skiprows=1 if first_sample == "drop" else 0)
    except ValueError as e:
        raise file_error(path, f"not one number a line ({e})") from None
    if values.ndim != 1:
        raise file_error(path, f"expected one value a line, got {values.shape[1]} columns")
    if values.size < 2:
        raise file_error(path, f"{values.size} sample(s); too short to resample")
    if not np.all(np.isfinite(values)):
        raise file_error(path, f"NaN/inf value at sample {int(np.flatnonzero(~np.isfinite(values))[0])}")
    return values


def resample_signal(x: np.ndarray, n_frames: int, grid: str = "stretch", fps: float = FPS,
                    rate_hz: float = PHYS_HZ) -> np.ndarray:
    """A physiology signal at each of `n_frames` frames, (n_frames,) float64.

    "stretch" (the loader): ``np.interp(np.linspace(0, L, N), np.arange(L), x)``; "clock": frame k at sample
    k * rate_hz / fps, linear, the last sample held beyond the end.
    """
    length = x.shape[0]
    if grid == "stretch":
        at = np.linspace(0, length, n_frames)
    else:
        at = np.arange(n_frames) * (rate_hz / fps)
    return np.interp(at, np.arange(length), x)


def read_physiology(folder: Path, n_frames: int, options: ReleaseOptions = ReleaseOptions()) -> dict[str, np.ndarray]:
    """Every signal of `PHYS_FILES` at each of the trial's `n_frames` frames (before the AU crop)."""
    out = {}
    for name, file in PHYS_FILES:
        x = read_signal(folder / file, options.phys_first_sample)
        if options.phys_grid == "clock" and (n_frames - 1) * PHYS_HZ / FPS > x.size - 1 + PHYS_HZ:
            log.warning("%s: %.1f s of samples for %.1f s of frames; the last sample is held",
                        folder / file, x.size / PHYS_HZ, n_frames / FPS)
        out[name] = resample_signal(x, n_frames, options.phys_grid)
    return out


# ----------------------------------------------------------------------------------------------------------
# AU coding.


def _read_int_rows(path: Path, header: bool) -> np.ndarray:
    """An integer CSV (optionally after one header line) -> (rows, cols) int64."""
    if not path.is_file():
        raise file_error(path, "AU coding file not found")
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if header:
        rows = rows[1:]
    if not rows:
        raise file_error(path, "no AU rows")
    try:
        table = np.array([[int(float(v)) for v in r] for r in rows], np.int64)
    except ValueError as e:
        raise file_error(path, f"not a table of numbers ({e})") from None
    return table


def read_au_coding(root: Path, subject: str, trial: str,
                   n_frames: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """A trial's AU codes, padded to the trial's frames, and the coded range.

    Returns:
      occ: (n_frames, 34) int64, columns `OCC_AUS`, -1 outside the coded range.
      intensity: (n_frames, 5) int64, columns `INT_AUS`, -1 outside the coded range.
      (start, end): 0-based indices of the first and last coded frame (end inclusive).
    """
    occ_path = root / "AUCoding" / "AU_OCC" / f"{subject}_{trial}.csv"
    occ = _read_int_rows(occ_path, header=True)
    if occ.shape[1] != 1 + len(OCC_AUS):
        raise file_error(occ_path, f"{occ.shape[1]} columns; expected the frame number and {len(OCC_AUS)} AUs")
    start, end = int(occ[0, 0]), int(occ[-1, 0])
    if end - start + 1 != occ.shape[0] or start < 1 or end > n_frames:
        raise file_error(occ_path, f"{occ.shape[0]} rows for frames {start}..{end}, but the zip has frames "
                                   f"1..{n_frames} (rows must cover one range of existing frames)")
    ints = []
    for au in INT_AUS:
        path = root / "AUCoding" / "AU_INT" / f"AU{au:02d}" / f"{subject}_{trial}_AU{au:02d}.csv"
        table = _read_int_rows(path, header=False)
        if table.shape[0] != occ.shape[0] or table.shape[1] < 2:
            raise file_error(path, f"{table.shape[0]} rows x {table.shape[1]} columns; expected {occ.shape[0]} "
                                   f"rows (as {occ_path.name}) and an intensity column")
        ints.append(table[:, 1])

    def pad(cols: np.ndarray) -> np.ndarray:
        out = np.full((n_frames, cols.shape[1]), -1, np.int64)
        out[start - 1 : end] = cols
        return out

    return pad(occ[:, 1:]), pad(np.stack(ints, axis=1)), (start - 1, end - 1)


def map_au_codes(au: np.ndarray, mode: str = "published", intensity: bool = False) -> np.ndarray:
    """AU codes of the coded range -> labels, float64.

    "published": every value other than 1 -> 0 (left alone when every value is -1, as the loader does);
    "masked": occurrence values other than 0/1 -> NaN, intensities 0..5 kept, other intensity codes NaN.
    """
    au = np.asarray(au, np.float64)
    if mode == "published":
        return au if np.all(au == -1) else np.where(au == 1, 1.0, 0.0)
    valid = (au >= 0) & (au <= 5) if intensity else (au == 0) | (au == 1)
    return np.where(valid, au, np.nan)


# ----------------------------------------------------------------------------------------------------------
# POS pseudo-PPG.


def pos_band(hr_bpm_mean: float, fps: float = FPS, halfband: str = "published") -> tuple[float, float]:
    """The POS band-pass (low, high) Hz around the mean HR: +- 20/fps Hz ("published") or +- 20 bpm."""
    f = hr_bpm_mean / 60.0
    half = 20.0 / fps if halfband == "published" else 20.0 / 60.0
    return max(f - half, 0.70), min(f + half, 3.0)


def pos_pseudo_ppg(rgb_means: np.ndarray, hr_bpm_mean: float, fps: float = FPS,
                   options: ReleaseOptions = ReleaseOptions(), source: object = "") -> dict[str, np.ndarray]:
    """The loader's POS pseudo-PPG of a trial, step by step.

    Args:
      rgb_means: (N, 3) mean R, G, B of each (cropped, 144 x 144) frame.
      hr_bpm_mean: the trial's mean HR label (beats/min); centres the band-pass.
      fps: frame rate (Hz).

    Returns:
      "H" (N,) overlap-added POS windows of ceil(1.6 fps) frames; "detrended" (lambda 100); "band_hz" (2,);
      "b", "a" the order-2 Butterworth band-pass; "bvp" (filtfilt); "envelope" |hilbert(bvp)|;
      "env_norm_bvp" bvp / envelope. All float64.
    """
    rgb = np.asarray(rgb_means, np.float64)
    n = rgb.shape[0]
    win = math.ceil(1.6 * fps)
    if n < win + 2 or n <= 15:
        raise file_error(source, f"{n} frames in the AU-coded range; POS needs more than {max(win + 1, 15)}")
    if options.pos_last_frame == "published":
        h = np.append(pos(rgb[:-1], fps), 0.0)  # windows [m, m + win) for m <= N - 1 - win
    else:
        h = pos(rgb, fps)
    detrended = detrend(h, 100.0)
    band = pos_band(hr_bpm_mean, fps, options.pos_halfband)
    if not band[0] < band[1]:
        raise file_error(source, f"mean HR label {hr_bpm_mean:.1f} bpm gives an empty POS band {band} Hz")
    b, a = signal.butter(2, [band[0] / fps * 2, band[1] / fps * 2], btype="bandpass")
    bvp = signal.filtfilt(b, a, detrended)
    envelope = np.abs(signal.hilbert(bvp))
    with np.errstate(divide="ignore", invalid="ignore"):
        env_norm = bvp / envelope
    if not np.all(np.isfinite(env_norm)):
        raise file_error(source, "POS pseudo-PPG has a zero envelope (constant frames?)")
    return {"H": h, "detrended": detrended, "band_hz": np.array(band), "b": b, "a": a, "bvp": bvp,
            "envelope": envelope, "env_norm_bvp": env_norm}


# ----------------------------------------------------------------------------------------------------------
# A whole trial.


@dataclasses.dataclass
class ReleaseTrial:
    """One trial after the AU-subset crop.

    Attributes:
      frames: (N, 144, 144, 3) uint8 RGB, the AU-coded frames.
      labels: `LABEL_COLUMNS` -> (N,) float64, the loader's label matrix before diff-normalization (clipped,
        AU codes mapped).
      n_frames_zip: frames of the trial in the zip (before the crop).
      crop: (start, end) 0-based indices of the coded range in the zip's frames (end inclusive).
    """

    frames: np.ndarray
    labels: dict[str, np.ndarray]
    n_frames_zip: int
    crop: tuple[int, int]


def read_release_trial(root: str | os.PathLike, tid: str, options: ReleaseOptions = ReleaseOptions(),
                       progress: bool = False) -> ReleaseTrial:
    """Reads one trial ``<subject>_<trial>`` of the release under `root` (see the module docstring).

    Raises:
      UserError: naming the file: missing or unreadable physiology, zip, AU file; rows not matching.
    """
    root = Path(root)
    subject, trial = split_trial_id(tid)
    zip_path = root / "2D+3D" / f"{subject}.zip"
    entries = zip_trial_entries(zip_path, trial)
    n_full = len(entries)
    phys = read_physiology(root / "Physiology" / subject / trial, n_full, options)
    occ, inten, (start, end) = read_au_coding(root, subject, trial, n_full)
    frames = read_zip_frames(zip_path, entries[start : end + 1], progress=progress)
    sl = slice(start, end + 1)
    labels = {name: phys[name][sl] for name, _ in PHYS_FILES}
    for name, (lo, hi) in CLIP_RANGES.items():
        labels[name] = np.clip(labels[name], lo, hi)
    if options.au_codes == "published":  # the loader maps the 39 AU columns together
        mapped = map_au_codes(np.concatenate([occ[sl], inten[sl]], axis=1), "published")
        occ_map, int_map = mapped[:, : len(OCC_AUS)], mapped[:, len(OCC_AUS):]
    else:
        occ_map, int_map = map_au_codes(occ[sl], "masked"), map_au_codes(inten[sl], "masked", intensity=True)
    for i, au in enumerate(OCC_AUS):
        labels[f"AU{au:02d}"] = occ_map[:, i]
    for i, au in enumerate(INT_AUS):
        labels[f"AU{au:02d}int"] = int_map[:, i]
    hr = labels["HR_bpm"]
    rgb = np.array([cv2.mean(f)[:3] for f in frames], np.float64).reshape(-1, 3)
    p = pos_pseudo_ppg(rgb, float(np.sum(hr) / hr.size), FPS, options, source=zip_path)
    labels["pos_bvp"], labels["pos_env_norm_bvp"] = p["bvp"], p["env_norm_bvp"]
    return ReleaseTrial(frames=frames, labels={k: labels[k] for k in LABEL_COLUMNS}, n_frames_zip=n_full,
                        crop=(start, end))


def release_recording(root: str | os.PathLike, tid: str, options: ReleaseOptions = ReleaseOptions(),
                      progress: bool = False) -> Recording:
    """One release trial as a `Recording`: pulse = blood pressure, the POS waves and the other columns in extra."""
    t = read_release_trial(root, tid, options, progress)
    lab = t.labels
    au = np.stack([lab[name] for name in AU_NAMES], axis=1).astype(np.float32)
    extra = {k: lab[k] for k in ("pos_bvp", "pos_env_norm_bvp", "systolic_bp", "diastolic_bp", "mean_bp", "eda")}
    subject, _ = split_trial_id(tid)
    return Recording(name=tid, subject=subject, frames=t.frames, fps=FPS, bvp=lab["bp_wave"], resp=lab["resp_wave"],
                     au=au, hr_bpm=lab["HR_bpm"], rr_bpm=lab["resp_bpm"],
                     source=os.fspath(Path(root) / "2D+3D" / f"{subject}.zip"), extra=extra)
