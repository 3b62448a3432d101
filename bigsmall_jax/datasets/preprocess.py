"""The paper's preprocessing: face crop, Big (standardized raw) and Small (diff-normalized) frames, labels.

Recipe (checked bit-exactly against ``tests/data/preprocess_golden.npz``, made with the published
PyTorch code):

1. Face crop: a Haar-cascade face box, enlarged by `PreprocessConfig.enlarge` about its centre, made
   square and kept inside the frame (`bigsmall_jax.datasets.face_boxes`).
2. Each cropped **uint8** frame is resized to ``big_size`` x ``big_size`` with OpenCV ``INTER_AREA``.
   Resizing the uint8 frames (OpenCV rounds the result to integers) reproduces the golden arrays to
   0.0 abs error; resizing float frames is off by up to 0.017 (Big) and 0.074 (Small), so uint8 it is.
   This is why `PreprocessedVideo.big_u8` stores the resized frames losslessly as uint8.
3. Big: the resized frames as float32, standardized over the whole video: (x - mean) / std.
4. Small: at ``big_size`` resolution, d[t] = (x[t+1] - x[t]) / (x[t+1] + x[t] + 1e-7), divided by the std
   of all of d, a zero frame appended (so T frames in, T out), NaN -> 0; then every frame is resized to
   ``small_size`` x ``small_size`` with INTER_AREA (on the float frames).
5. Waves (pulse, respiration): np.diff, divided by its std, a 0 appended.

Everything is computed on the whole video, then cut into clips of ``n_segment`` frames (`chunk_video`).
`preprocess_recording` streams over the video in blocks so that long videos do not need several copies
of the (T, 144, 144, 3) float array in memory; its results equal the whole-array `big_small`.
"""

from __future__ import annotations

import dataclasses
import logging

import cv2
import numpy as np
from tqdm import tqdm

from bigsmall_jax.datasets.face import crop_frames
from bigsmall_jax.datasets.face_boxes import face_boxes
from bigsmall_jax.datasets.recording import AU_NAMES, Recording
from bigsmall_jax.errors import UserError, file_error

log = logging.getLogger(__name__)

FACE_CROP_MODES = ("first", "every", "median", "none", "box", "toolbox")
TAIL_MODES = ("drop", "pad")
_DIFF_EPS = 1e-7
_BLOCK = 256  # frames per block when streaming over a long video
_STATS_BLOCK = 16  # frames per partial sum of `VideoStatistics` (its float64 temporaries: 16 x 62208 x 8 bytes)


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """How a recording becomes model inputs.

    Attributes:
      big_size: side of the Big frames in pixels (paper: 144).
      small_size: side of the Small frames in pixels (paper: 9).
      face_crop: "first": detect the face on frame 0 and use that box for the whole video; "every": detect
        every `crop_every` frames, each box held until the next detection; "median": detect every
        `crop_every` frames and use the component-wise median box for the whole video; "none": no crop
        (frames are already face crops); "box": the recording's known `face_box` (no detection); "toolbox":
        the rPPG-Toolbox loaders' box from frame 0 (`face.toolbox_face_box`, grown by `enlarge`, not squared).
      crop_every: detection period in frames for "every" and "median".
      enlarge: the face box's side is multiplied by this about its centre (context around the face),
        then the box is made square and kept inside the frame.
      n_segment: frames per clip.
      tail: the last T % n_segment frames: "drop" them, or "pad" the clip by repeating the last frame
        (padded frames get 0 in the clip's ``frame_mask``).
    """

    big_size: int = 144
    small_size: int = 9
    face_crop: str = "first"
    crop_every: int = 30
    enlarge: float = 1.5
    n_segment: int = 3
    tail: str = "drop"

    def __post_init__(self):
        if self.face_crop not in FACE_CROP_MODES:
            raise UserError(f"PreprocessConfig.face_crop: unknown mode {self.face_crop!r}; "
                            f"valid: {', '.join(FACE_CROP_MODES)}")
        if self.tail not in TAIL_MODES:
            raise UserError(f"PreprocessConfig.tail: unknown mode {self.tail!r}; valid: {', '.join(TAIL_MODES)}")
        for name in ("big_size", "small_size", "crop_every", "n_segment"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"PreprocessConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.enlarge > 0:
            raise UserError(f"PreprocessConfig.enlarge must be > 0, got {self.enlarge!r}")


def _resize_stack(frames, size: int) -> np.ndarray:
    """INTER_AREA resize of every frame, keeping the dtype (uint8 in, rounded uint8 out)."""
    return np.stack([cv2.resize(np.ascontiguousarray(f), (size, size), interpolation=cv2.INTER_AREA)
                     for f in frames])


def crop_resize_u8(frames: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Frames cropped to their boxes and resized to (size, size) as uint8 (step 2 of the recipe).

    Args:
      frames: (T, H, W, 3) uint8 RGB.
      boxes: (T, 4) (x, y, w, h) per frame.

    Returns:
      (T, size, size, 3) uint8.
    """
    return _resize_stack(crop_frames(frames, boxes), size)


def resize_area(frames, size: int) -> np.ndarray:
    """Resizes every frame to (size, size) with OpenCV INTER_AREA.

    Args:
      frames: (T, H, W, C) array or a list of (H_t, W_t, C) frames; uint8 frames are resized as uint8
        (OpenCV rounds the result, as the reference recipe does), float frames as float32.

    Returns:
      (T, size, size, C) float32.
    """
    if len(frames) == 0:
        raise ValueError("resize_area: no frames")
    first = np.asarray(frames[0])
    if first.dtype != np.uint8:
        frames = [np.asarray(f, np.float32) for f in frames]
    return _resize_stack(frames, size).astype(np.float32)


def _safe_scale(x: np.ndarray, std: float) -> np.ndarray:
    """x / std, with NaN / inf (std == 0) set to 0 as the reference does."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (x / np.float32(std)).astype(np.float32)
    out[~np.isfinite(out)] = 0.0
    return out


def standardize(x: np.ndarray) -> np.ndarray:
    """(x - mean) / std over the whole array, float32; NaN (a constant array) -> 0."""
    x = np.asarray(x, np.float32)
    return _safe_scale(x - np.mean(x, dtype=np.float64).astype(np.float32), float(np.std(x, dtype=np.float64)))


def _frame_diffs(x: np.ndarray) -> np.ndarray:
    """(x[t+1] - x[t]) / (x[t+1] + x[t] + 1e-7) for t < T-1: (T-1, ...) float32."""
    x = np.asarray(x, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x[1:] - x[:-1]) / (x[1:] + x[:-1] + np.float32(_DIFF_EPS))


def diff_normalize_frames(x: np.ndarray) -> np.ndarray:
    """Normalized frame differences, the Small branch's input (before its resize).

    Args:
      x: (T, H, W, C) frames, non-negative intensities (e.g. the resized frames as float).

    Returns:
      (T, H, W, C) float32: d[t] = (x[t+1] - x[t]) / (x[t+1] + x[t] + 1e-7) divided by the std of all of
      d, a zero frame appended at the end, NaN -> 0.
    """
    d = _frame_diffs(x)
    d = _safe_scale(d, float(np.nanstd(d, dtype=np.float64))) if d.size else d
    return np.concatenate([d, np.zeros((1, *np.shape(x)[1:]), np.float32)], axis=0)


def diff_normalize_label(wave: np.ndarray) -> np.ndarray:
    """np.diff(wave) / std(np.diff(wave)), a 0 appended: (T,) -> (T,) float32 (0 for a constant wave)."""
    wave = np.asarray(wave, np.float64)
    d = np.diff(wave)
    std = float(np.std(d)) if d.size else 0.0
    d = d / std if std > 0 else np.zeros_like(d)
    return np.append(d, 0.0).astype(np.float32)


def big_small(
    frames_u8_cropped: np.ndarray, config: PreprocessConfig = PreprocessConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """The reference recipe on already face-cropped frames.

    Args:
      frames_u8_cropped: (T, H, W, 3) uint8 RGB face crops (or a list of crops of any sizes).
      config: `big_size` and `small_size` are used.

    Returns:
      big: (T, big_size, big_size, 3) float32, standardized over the whole clip.
      small: (T, small_size, small_size, 3) float32, diff-normalized then resized.
    """
    resized = resize_area(frames_u8_cropped, config.big_size)
    big = standardize(resized)
    small = resize_area(diff_normalize_frames(resized), config.small_size)
    return big, small


def standardize_big(big_u8: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Model input from compact storage: (big_u8 - mean) / std as float32 (0 where std == 0).

    Args:
      big_u8: (..., B, B, 3) uint8 resized face frames (`PreprocessedVideo.big_u8` or a clip of it).
      mean, std: `PreprocessedVideo.big_mean` / `big_std` (statistics of the whole video).
    """
    big_u8 = np.asarray(big_u8)
    if big_u8.dtype == np.uint8:
        # The same float32 arithmetic on the 256 possible values, then one table lookup per pixel (~4x
        # faster than computing it per pixel; the loader does this for every clip it serves).
        return _safe_scale(np.arange(256, dtype=np.float32) - np.float32(mean), std)[big_u8]
    return _safe_scale(big_u8.astype(np.float32) - np.float32(mean), std)


# ----------------------------------------------------------------------------------------------------------
# Whole recordings.


@dataclasses.dataclass
class PreprocessedVideo:
    """One recording after preprocessing, before cutting into clips.

    Attributes:
      name, subject: as in the `Recording`.
      fps: frames per second (Hz).
      big_u8: (T, B, B, 3) uint8 INTER_AREA-resized face frames (exact: the recipe resizes uint8 frames).
      big_mean, big_std: mean and std of ``big_u8`` as float over the whole video; the Big input is
        ``standardize_big(big_u8, big_mean, big_std)``.
      small: (T, S, S, 3) float32 diff-normalized Small frames (last frame zero).
      labels: per-frame labels, each (T,) or (T, 12), float32, only those the recording has:
        "bvp": diff-normalized pulse wave (the `bvp_key` wave); "bvp_ref": diff-normalized
        `Recording.bvp` when `bvp_key` picked another wave (BP4D+: the blood-pressure wave the paper tests
        against); "resp": diff-normalized respiration; "au": (T, 12) in {0, 1}, NaN = missing;
        "hr_bpm", "rr_bpm": rates in 1/min, not normalized.
    """

    name: str
    subject: str
    fps: float
    big_u8: np.ndarray
    big_mean: float
    big_std: float
    small: np.ndarray
    labels: dict[str, np.ndarray]

    @property
    def num_frames(self) -> int:
        return int(self.big_u8.shape[0])


def _check_frames(frames, source: str) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        shape = getattr(frames, "shape", None)
        dtype = getattr(frames, "dtype", type(frames).__name__)
        raise file_error(source, f"frames must be (T, H, W, 3) uint8 RGB, got shape {shape} {dtype}")
    if frames.shape[0] == 0:
        raise file_error(source, "video has no frames")
    if frames.shape[1] == 0 or frames.shape[2] == 0:
        raise file_error(source, f"frames have zero size {frames.shape[1:3]}")


def _check_wave(wave, name: str, t: int, source: str, allow_nan: bool = False) -> np.ndarray:
    wave = np.asarray(wave, np.float64)
    shape = (t, len(AU_NAMES)) if name == "au" else (t,)
    if wave.shape != shape:
        raise file_error(source, f"label {name!r} has shape {wave.shape}, expected {shape} (T = {t} frames)")
    if not allow_nan and not np.all(np.isfinite(wave)):
        bad = int(np.flatnonzero(~np.isfinite(wave))[0])
        raise file_error(source, f"label {name!r} has NaN/inf values (first at frame {bad})")
    if allow_nan and np.any(np.isinf(wave)):
        raise file_error(source, f"label {name!r} has inf values")
    return wave


def _recording_labels(rec: Recording, bvp_key: str, source: str) -> dict[str, np.ndarray]:
    t = rec.num_frames
    if bvp_key == "bvp":
        pulse = rec.bvp
    elif bvp_key in rec.extra:
        pulse = rec.extra[bvp_key]
    else:
        raise file_error(source, f"pulse label {bvp_key!r} not in the recording; available: "
                                 f"{', '.join(['bvp', *sorted(rec.extra)])}")
    labels: dict[str, np.ndarray] = {}
    if pulse is not None:
        labels["bvp"] = diff_normalize_label(_check_wave(pulse, bvp_key, t, source))
    if bvp_key != "bvp" and rec.bvp is not None:
        labels["bvp_ref"] = diff_normalize_label(_check_wave(rec.bvp, "bvp", t, source))
    if rec.resp is not None:
        labels["resp"] = diff_normalize_label(_check_wave(rec.resp, "resp", t, source))
    if rec.au is not None:
        au = _check_wave(rec.au, "au", t, source, allow_nan=True)
        ok = np.isnan(au) | (au == 0) | (au == 1)
        if not np.all(ok):
            raise file_error(source, f"label 'au' has values other than 0, 1, NaN: {np.unique(au[~ok])[:5]}")
        labels["au"] = au.astype(np.float32)
    for name in ("hr_bpm", "rr_bpm"):
        value = getattr(rec, name)
        if value is not None:
            labels[name] = _check_wave(value, name, t, source).astype(np.float32)
    return labels


def preprocess_recording(rec: Recording, config: PreprocessConfig = PreprocessConfig(),
                         bvp_key: str = "bvp") -> PreprocessedVideo:
    """Face crop, Big / Small frames and diff-normalized labels of one recording (the whole video).

    Args:
      rec: the recording; frames (T, H, W, 3) uint8.
      config: preprocessing settings.
      bvp_key: the pulse label: "bvp" (`Recording.bvp`) or a key of `Recording.extra` (BP4D+ trains on
        "pos_env_norm_bvp"; the blood-pressure wave is then kept as label "bvp_ref").

    Raises:
      UserError: frames not (T, H, W, 3) uint8, T == 0, a label of the wrong length, NaN/inf in a wave,
        AU codes other than 0/1/NaN, no face found.
    """
    source = rec.source or rec.name
    _check_frames(rec.frames, source)
    labels = _recording_labels(rec, bvp_key, source)
    frames = rec.frames
    t = frames.shape[0]
    boxes = face_boxes(frames, config, source, rec.face_box)

    # Pass 1: crop + uint8 resize (kept), running sums for the Big statistics and the diff std.
    big_u8 = np.empty((t, config.big_size, config.big_size, 3), np.uint8)
    stats = VideoStatistics()
    for start in tqdm(range(0, t, _BLOCK), desc=f"preprocess {rec.name}", unit="block", leave=False,
                      disable=t <= _BLOCK):
        stop = min(t, start + _BLOCK)
        big_u8[start:stop] = crop_resize_u8(frames[start:stop], boxes[start:stop], config.big_size)
        stats.add(big_u8[start:stop])
    big_mean, big_std, d_std = stats.finish(source)

    # Pass 2: Small frames from the normalized diffs.
    small = np.zeros((t, config.small_size, config.small_size, 3), np.float32)
    for start in range(0, t - 1, _BLOCK):
        stop = min(t - 1, start + _BLOCK)
        small[start:stop] = small_frames(big_u8[start : stop + 1], d_std, config.small_size)
    return PreprocessedVideo(
        name=rec.name, subject=rec.subject, fps=float(rec.fps), big_u8=big_u8, big_mean=float(big_mean),
        big_std=big_std, small=small, labels=labels,
    )


class VideoStatistics:
    """The whole-video statistics of the recipe, from the resized uint8 face frames fed in time order.

    Big is standardized with the mean and std of all its pixels; Small divides the frame differences by
    the std of all of them (steps 3 and 4). Both come from running sums in float64 (the pixel sums are
    exact integers), accumulated over blocks of `_STATS_BLOCK` frames whatever sizes the frames are fed in,
    so a video fed frame by frame gives the same bits as one fed whole.
    """

    def __init__(self):
        self.n_frames = 0
        self._sums = np.zeros(4)  # pixel sum, pixel square sum, diff sum, diff square sum
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self._prev: np.ndarray | None = None

    def add(self, big_u8: np.ndarray) -> None:
        """Adds (n, B, B, 3) uint8 frames, the next ones of the video."""
        self._pending.append(np.asarray(big_u8))
        self._n_pending += len(big_u8)
        self.n_frames += len(big_u8)
        if self._n_pending >= _STATS_BLOCK:
            pending = np.concatenate(self._pending)
            n = len(pending) - len(pending) % _STATS_BLOCK
            for start in range(0, n, _STATS_BLOCK):
                self._accumulate(pending[start : start + _STATS_BLOCK])
            self._pending, self._n_pending = [pending[n:]], len(pending) - n

    def _accumulate(self, block: np.ndarray) -> None:
        f = block.astype(np.float64)
        ext = block if self._prev is None else np.concatenate([self._prev[None], block])
        d = _frame_diffs(ext).astype(np.float64)
        self._sums += (float(f.sum()), float(np.square(f).sum()), float(d.sum()), float(np.square(d).sum()))
        self._prev = block[-1]

    def finish(self, source: str = "") -> tuple[float, float, float]:
        """(Big mean, Big std, std of the frame differences) of every frame added (warns when the crops
        are constant)."""
        if self._n_pending:
            self._accumulate(np.concatenate(self._pending))
            self._pending, self._n_pending = [], 0
        if self._prev is None:
            raise file_error(source or "<frames>", "video has no frames")
        s1, s2, d_sum, d_sq = (float(v) for v in self._sums)
        n = self.n_frames * self._prev.size
        big_mean = s1 / n
        big_std = float(np.sqrt(max(s2 / n - big_mean**2, 0.0)))
        n_d = (self.n_frames - 1) * self._prev.size
        d_std = float(np.sqrt(max(d_sq / n_d - (d_sum / n_d) ** 2, 0.0))) if n_d else 0.0
        if big_std == 0.0:
            log.warning("%s: the face crops are constant; Big input will be all zeros", source or "<frames>")
        return float(big_mean), big_std, d_std


def small_frames(big_u8: np.ndarray, d_std: float, small_size: int) -> np.ndarray:
    """The Small frames of all but the last of (n + 1, B, B, 3) consecutive resized uint8 frames.

    Args:
      big_u8: frames t .. t + n of the video.
      d_std: std of the frame differences over the whole video (`VideoStatistics.finish`).

    Returns:
      (n, S, S, 3) float32: the normalized differences (0 where d_std == 0), INTER_AREA-resized.
    """
    return _resize_stack(_safe_scale(_frame_diffs(big_u8), d_std), small_size)


def chunk_video(video: PreprocessedVideo, n_segment: int = 3, tail: str = "drop") -> list[dict]:
    """Cuts a preprocessed video into consecutive clips of `n_segment` frames.

    Args:
      video: the whole preprocessed video (T frames).
      n_segment: frames per clip.
      tail: the last T % n_segment frames: "drop" them; or "pad" one more clip by repeating the last frame
        (and last label values).

    Returns:
      A list of dicts, one per clip in time order, each with "big_u8" (n, B, B, 3) uint8, "small"
      (n, S, S, 3) float32, "labels" (each label sliced to the clip's n frames), "chunk_index" (int, the
      clip's position: frames [i * n, (i + 1) * n)) and "frame_mask" (n,) float32, 1 for real frames and 0
      for padded ones.
    """
    if tail not in TAIL_MODES:
        raise UserError(f"chunk_video: unknown tail mode {tail!r}; valid: {', '.join(TAIL_MODES)}")
    if n_segment < 1:
        raise UserError(f"chunk_video: n_segment must be >= 1, got {n_segment}")
    t = video.num_frames
    n_full, rest = divmod(t, n_segment)
    n_chunks = n_full + (1 if tail == "pad" and rest else 0)
    if n_chunks == 0:
        log.warning("%s: %d frames is shorter than one clip of %d; no clips", video.name, t, n_segment)
    if rest and tail == "drop":
        log.debug("%s: dropping the last %d frames", video.name, rest)
    chunks = []
    for i in range(n_chunks):
        idx = np.minimum(np.arange(i * n_segment, (i + 1) * n_segment), t - 1)
        mask = (np.arange(i * n_segment, (i + 1) * n_segment) < t).astype(np.float32)
        chunks.append({
            "big_u8": video.big_u8[idx],
            "small": video.small[idx],
            "labels": {k: v[idx] for k, v in video.labels.items()},
            "chunk_index": i,
            "frame_mask": mask,
        })
    return chunks
