"""Live measurement: `Monitor(model).update(frame, t)` keeps a rolling window of face crops and, every stride,
returns heart rate, breathing rate, their quality and the active AUs.

Per frame (as it arrives): the face box (`FaceTracker`: detected on the first frame, then re-detected
every ``redetect_s`` seconds and smoothed), the crop resized to the model's Big size, and what the window
needs from it (`windows.FrameBuffer`). Every ``stride_s`` seconds, once ``window_s`` seconds are buffered:
the window's estimate (`windows.WindowModel`), which equals `infer` on that stretch of video with the same
face boxes. For the shipped ``pathways`` model that is the Small pathways over the window and the Big
pathway on its last clip only, so the per-frame cost is the crop and a frame difference.

Frames are (H, W, 3) uint8 RGB; `t` is the frame's time in seconds (its capture time, or index / fps).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any

import numpy as np

from bigsmall_jax.checkpoints.load import load_checkpoint
from bigsmall_jax.checkpoints.published import DEFAULT_MODEL
from bigsmall_jax.datasets.face import enlarge_box
from bigsmall_jax.datasets.preprocess import resize_area
from bigsmall_jax.errors import UserError
from bigsmall_jax.inference.detectors import BoxSmoother, make_detector
from bigsmall_jax.inference.windows import FrameBuffer, WindowEstimate, WindowModel

FPS_PROBE_FRAMES = 15  # frames whose timestamps set the frame rate when it is not given


@dataclasses.dataclass
class LiveEstimate:
    """One estimate of `Monitor.update`.

    Attributes:
      t: time of the frame that completed the window (s).
      window: the rates with their quality and the active AUs (`windows.WindowEstimate`; its times are
        relative to the first frame the monitor saw).
      box: (x, y, w, h) crop box of that frame.
      latency_s: wall time from the call's start (the frame's arrival) to the estimate.
    """

    t: float
    window: WindowEstimate
    box: tuple[int, int, int, int]
    latency_s: float

    def line(self) -> str:
        """One line for a terminal: rates, quality and active AUs."""
        w = self.window
        parts = [f"t={self.t:7.2f}s"]
        for name, est, unit in (("HR", w.hr, "bpm"), ("RR", w.rr, "/min")):
            if est is not None:
                rate = "  n/a" if est.rate is None else f"{est.rate:5.1f}"
                snr = "" if est.snr_db is None else f" SNR {est.snr_db:5.1f} dB"
                parts.append(f"{name} {rate} {unit}{snr}{' LOW QUALITY' if est.low_quality else ''}")
        if w.au_probs is not None:
            parts.append("AUs: " + (" ".join(w.active_aus()) or "none"))
        parts.append(f"latency {1000 * self.latency_s:.0f} ms")
        return " | ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"t": round(self.t, 4), **self.window.to_dict(), "box": list(self.box),
                "latency_ms": round(1000 * self.latency_s, 2)}


class FaceTracker:
    """The crop box of each frame: detected on the first frame (the paper's recipe, enlarged 1.5x and
    squared), then, when `redetect_s` is set, re-detected every `redetect_s` seconds and smoothed over time
    (`detectors.BoxSmoother`); a frame where detection fails keeps the last box."""

    def __init__(self, detector: str = "haar", redetect_s: float | None = 1.0, enlarge: float = 1.5,
                 smoothing: float = 0.3, deadband: float = 0.1):
        self.detect = make_detector(detector)
        self.redetect_s, self.enlarge = redetect_s, enlarge
        self.smoother = BoxSmoother(alpha=smoothing, deadband=deadband)
        self.box: tuple[int, int, int, int] | None = None
        self.last_detection_t = -math.inf
        self.misses = 0  # detections that found no face

    def update(self, frame: np.ndarray, t: float) -> tuple[int, int, int, int] | None:
        """The crop box for this frame (None until a face was found once)."""
        due = self.box is None or (self.redetect_s is not None and t - self.last_detection_t >= self.redetect_s)
        if due:
            self.last_detection_t = t
            found = self.detect(frame)
            if found is None:
                self.misses += 1
            else:
                h, w = frame.shape[:2]
                smoothed = self.smoother.update(found)
                self.box = enlarge_box(smoothed, self.enlarge, h, w)
        return self.box


class Monitor:
    """Rolling-window physiological measurement of a frame stream.

    Args:
      model: a shipped model's name, a checkpoint path, or a `BigSmall` module (then give `variables`).
      variables: the module's variables.
      window_s: window length in seconds (10 s: HR resolution ~2.9 bpm per FFT bin at 30 fps).
      stride_s: seconds between estimates.
      fps: frame rate in Hz; None: from the timestamps of the first frames (their median interval).
      detector: face detector (`detectors.DETECTORS`); None: the frames are already face crops.
      redetect_s: re-detect the face this often (None: only on the first frame, as `infer` does).
    """

    def __init__(self, model: Any = DEFAULT_MODEL, variables=None, window_s: float = 10.0, stride_s: float = 1.0,
                 fps: float | None = None, detector: str | None = "haar", redetect_s: float | None = 1.0):
        if isinstance(model, (str, os.PathLike)):
            model, variables = load_checkpoint(model)
        if variables is None:
            raise UserError("Monitor: give the model's variables with a BigSmall module")
        for name, value in (("window_s", window_s), ("stride_s", stride_s)):
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"{name} must be a positive number of seconds, got {value}")
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise UserError(f"fps must be a positive frame rate, got {fps}")
        self.model, self.runner = model, WindowModel(model, variables)
        self.window_s, self.stride_s = float(window_s), float(stride_s)
        self.fps = None if fps is None else float(fps)
        self.tracker = FaceTracker(detector, redetect_s) if detector else None
        self.buffer: FrameBuffer | None = None
        self._pending: list[np.ndarray] = []  # crops seen before the frame rate is known
        self._times: list[float] = []
        self.t0: float | None = None
        self.n_frames = 0  # frames buffered (with a face box)
        self._next_estimate = 0

    @property
    def window_frames(self) -> int:
        return int(round(self.window_s * self.fps))

    @property
    def stride_frames(self) -> int:
        return max(1, int(round(self.stride_s * self.fps)))

    def _crop(self, frame: np.ndarray, t: float) -> tuple[np.ndarray | None, tuple[int, int, int, int]]:
        size = self.model.config.big_size
        if self.tracker is None:
            box = (0, 0, frame.shape[1], frame.shape[0])
        else:
            box = self.tracker.update(frame, t)
            if box is None:
                return None, (0, 0, 0, 0)
        x, y, w, h = box
        crop = frame[y : y + h, x : x + w]
        return resize_area(crop[None], size)[0].astype(np.uint8), box

    def warmup(self) -> None:
        """Compiles the model for this window length (needs the frame rate), so the first estimate is not
        delayed by compilation."""
        if self.fps is None:
            raise UserError("Monitor.warmup needs the frame rate (give fps)")
        self.runner.warmup(self.window_frames)

    def _start_buffer(self) -> None:
        c = self.model.config
        self.buffer = FrameBuffer(self.window_frames, c.big_size, c.small_size)
        for crop in self._pending:
            self.buffer.push(crop)
        self._pending = []
        self._next_estimate = self.window_frames

    def update(self, frame: np.ndarray, t: float) -> LiveEstimate | None:
        """Adds one frame; returns an estimate when this frame completes a window at a stride, else None.

        Args:
          frame: (H, W, 3) uint8 RGB.
          t: the frame's time in seconds (increasing).
        """
        arrived = time.perf_counter()
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise UserError(f"Monitor.update: a frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        crop, box = self._crop(frame, t)
        if crop is None:
            return None  # no face yet
        if self.t0 is None:
            self.t0 = float(t)
        self.n_frames += 1
        if self.buffer is None:
            self._pending.append(crop)
            self._times.append(float(t))
            if self.fps is None and len(self._times) >= FPS_PROBE_FRAMES:
                intervals = np.diff(self._times)
                median = float(np.median(intervals))
                if not median > 0:
                    raise UserError("Monitor.update: frame times do not increase; cannot tell the frame rate")
                self.fps = 1.0 / median
            if self.fps is not None:
                self._start_buffer()
            return None
        self.buffer.push(crop)
        if self.n_frames < self._next_estimate:
            return None
        self._next_estimate = self.n_frames + self.stride_frames
        n = self.window_frames
        start = self.n_frames - n
        window = self.runner.estimate(*self.buffer.window(n), self.fps, start_frame=start)
        return LiveEstimate(t=float(t), window=window, box=tuple(int(v) for v in box),
                            latency_s=time.perf_counter() - arrived)


__all__ = ["FaceTracker", "LiveEstimate", "Monitor"]
