"""Rates over time: the paper's pipeline on sliding windows of a video, shared by ``infer --window-s`` and
live measurement (`bigsmall_jax.inference.live`).

The estimate of a window of frames [a, a + n) is what `infer` gives on that stretch of video alone, with
the face boxes fixed: Big frames standardized over the window, Small frames diff-normalized over the
window (`preprocess.preprocess_recording`'s recipe), the model, and the rates of its waves with their
quality (`evaluation.quality`). `FrameBuffer` keeps what the recipe needs per frame (the 144x144 crop,
its pixel sums, the 9x9 resize of its difference with the previous frame and that difference's sums), so
that a window's inputs are assembled from the buffer without preprocessing any frame twice.

For the shipped ``pathways`` model the waves come from the Small pathways alone (the Big pathway does not
feed them), and the action units are read on the window's last frame only; for a BigSmall model, whose
pulse depends on the Big branch too, the whole model runs on every window.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from typing import Any

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from bigsmall_jax.datasets.preprocess import _DIFF_EPS, standardize_big
from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.errors import UserError, file_error
from bigsmall_jax.evaluation import quality
from bigsmall_jax.evaluation.evaluate import predict_frames
from bigsmall_jax.model import BigSmall, ModelConfig, build_model
from bigsmall_jax.runtime import Forward

AU_THRESHOLD = 0.5  # an AU is active when its sigmoid probability exceeds this


def window_bounds(num_frames: int, fps: float, window_s: float, stride_s: float,
                  source: str = "<video>") -> list[tuple[int, int]]:
    """[start, stop) frame ranges of windows of `window_s` seconds every `stride_s` seconds.

    Raises:
      UserError: a window or stride that is not positive, or a video shorter than one window.
    """
    if not (math.isfinite(window_s) and window_s > 0 and math.isfinite(stride_s) and stride_s > 0):
        raise UserError(f"--window-s and --stride-s must be positive seconds, got {window_s:g} and {stride_s:g}")
    n = int(round(window_s * fps))
    step = max(1, int(round(stride_s * fps)))
    if num_frames < n:
        raise file_error(source, f"is {num_frames / fps:.2f} s long ({num_frames} frames), shorter than one "
                                 f"{window_s:g} s window; pass a shorter --window-s or a longer video")
    return [(a, a + n) for a in range(0, num_frames - n + 1, step)]


class FrameBuffer:
    """The last `capacity` face crops with what a window's Big and Small inputs need.

    Per frame t: the (B, B, 3) uint8 INTER_AREA crop, the sum and sum of squares of its pixels; per pair
    (t-1, t): d = (x[t] - x[t-1]) / (x[t] + x[t-1] + 1e-7) at B x B resized to (S, S, 3) float32, and the
    sum and sum of squares of d at B x B. Division by the window's std commutes with the (linear)
    resize, so the Small frames of any window come from these without touching the crops again.
    """

    def __init__(self, capacity: int, big_size: int = 144, small_size: int = 9):
        self.capacity = int(capacity)
        self.big_size, self.small_size = big_size, small_size
        self.big = collections.deque(maxlen=capacity)
        self.sums = collections.deque(maxlen=capacity)  # (sum, sum of squares) of the crop's pixels
        self.diff9 = collections.deque(maxlen=capacity)  # pair (t-1, t) at index t; None for the first frame
        self.diff_sums = collections.deque(maxlen=capacity)
        self.count = 0  # frames pushed so far

    def push(self, crop_u8: np.ndarray) -> None:
        """Adds one (B, B, 3) uint8 resized face crop."""
        x = np.asarray(crop_u8)
        f = x.astype(np.float64)
        if self.big:
            prev = self.big[-1].astype(np.float32)
            cur = x.astype(np.float32)
            with np.errstate(divide="ignore", invalid="ignore"):
                d = (cur - prev) / (cur + prev + np.float32(_DIFF_EPS))
            d64 = d.astype(np.float64)
            self.diff9.append(cv2.resize(d, (self.small_size, self.small_size), interpolation=cv2.INTER_AREA))
            self.diff_sums.append((float(d64.sum()), float(np.square(d64).sum())))
        else:
            self.diff9.append(None)
            self.diff_sums.append((0.0, 0.0))
        self.big.append(x)
        self.sums.append((float(f.sum()), float(np.square(f).sum())))
        self.count += 1

    def __len__(self) -> int:
        return len(self.big)

    def window(self, n: int) -> tuple[np.ndarray, float, float, np.ndarray]:
        """The model inputs of the last `n` frames as `preprocess.preprocess_recording` makes them.

        Returns:
          (big_u8 (n, B, B, 3), big_mean, big_std, small (n, S, S, 3) float32 with a zero last frame).
        """
        if n > len(self):
            raise ValueError(f"the buffer holds {len(self)} frames, fewer than {n}")
        start = len(self) - n
        big = np.stack([self.big[i] for i in range(start, len(self))])
        sums = np.array([self.sums[i] for i in range(start, len(self))])
        size = big[0].size
        mean = float(sums[:, 0].sum()) / (n * size)
        std = float(np.sqrt(max(float(sums[:, 1].sum()) / (n * size) - mean**2, 0.0)))
        pairs = range(start + 1, len(self))
        d_sums = np.array([self.diff_sums[i] for i in pairs]).reshape(-1, 2)
        n_d = (n - 1) * size
        d_mean = float(d_sums[:, 0].sum()) / n_d if n_d else 0.0
        d_std = float(np.sqrt(max(float(d_sums[:, 1].sum()) / n_d - d_mean**2, 0.0))) if n_d else 0.0
        small = np.zeros((n, self.small_size, self.small_size, 3), np.float32)
        if n > 1:
            with np.errstate(divide="ignore", invalid="ignore"):
                small[:-1] = np.stack([self.diff9[i] for i in pairs]) / np.float32(d_std)
            small[~np.isfinite(small)] = 0.0
        return big, mean, std, small


@dataclasses.dataclass
class WindowEstimate:
    """The rates (with quality) and active AUs of one window.

    Attributes:
      start_s, end_s: the window's span in seconds ([first frame, last frame + 1) / fps).
      hr, rr: rate estimates (None without that head).
      au_probs: (n_au,) AU probabilities of the window's last frame (None without an AU head).
    """

    start_s: float
    end_s: float
    hr: quality.RateEstimate | None
    rr: quality.RateEstimate | None
    au_probs: np.ndarray | None = None

    def active_aus(self, names=AU_NAMES) -> list[str]:
        """Names of the AUs above `AU_THRESHOLD`."""
        if self.au_probs is None:
            return []
        names = list(names) if len(names) == len(self.au_probs) else [f"AU{j}" for j in range(len(self.au_probs))]
        return [n for n, p in zip(names, self.au_probs, strict=True) if p > AU_THRESHOLD]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        out: dict[str, Any] = {"start_s": round(self.start_s, 4), "end_s": round(self.end_s, 4)}
        if self.hr is not None:
            out.update(self.hr.to_dict("hr_bpm"))
        if self.rr is not None:
            out.update(self.rr.to_dict("rr_bpm"))
        if self.au_probs is not None:
            out["active_aus"] = self.active_aus()
        return out


def _sub_variables(variables, keys) -> dict:
    return {"params": {k: v for k, v in variables["params"].items() if k in keys}}


@functools.lru_cache(maxsize=8)
def _waves_only(config: ModelConfig):
    """A jitted (variables, small) -> {"bvp", "resp"} for a ``pathways`` config without AUs (no Big input)."""
    model = build_model(config)

    def forward(variables, small):
        big = jnp.zeros((small.shape[0], config.big_size, config.big_size, 3), jnp.float32)  # unused
        return model.apply(variables, big, small)

    return jax.jit(forward)


@functools.lru_cache(maxsize=8)
def _au_forward(config: ModelConfig) -> Forward:
    return Forward(build_model(config))


class WindowModel:
    """A model as windows need it: `estimate(big_u8, mean, std, small, fps)` -> `WindowEstimate`.

    `warmup(n)` compiles the forward passes for windows of `n` frames ahead of time. `forward` runs a batch
    instead of the jitted model (`predict_frames`; an ONNX Runtime `runners.OnnxRunner`), which then runs
    every head on every frame."""

    def __init__(self, model: BigSmall, variables, forward=None):
        self.model, self.variables, self.forward = model, variables, forward
        c = model.config
        self.config = c
        self.split = c.variant == "pathways" and forward is None
        if self.split:
            self.wave_config = dataclasses.replace(c, n_au=0) if (c.bvp or c.resp) else None
            self.au_config = dataclasses.replace(c, bvp=False, resp=False) if c.n_au else None
            self.wave_vars = _sub_variables(variables, {"small_bvp", "bvp", "small_resp", "resp"})
            self.au_vars = _sub_variables(variables, {"big", "au"})

    def warmup(self, n: int) -> None:
        """Runs the forward passes once on zero inputs of a window of `n` frames (compiles them)."""
        c = self.config
        big = np.zeros((n, c.big_size, c.big_size, 3), np.uint8)
        self.outputs(big, 0.0, 1.0, np.zeros((n, c.small_size, c.small_size, 3), np.float32))

    def outputs(self, big_u8: np.ndarray, mean: float, std: float, small: np.ndarray) -> dict[str, np.ndarray]:
        """{"bvp", "resp": (n,) waves, "au": (k, n_au) logits} of a window; for ``pathways`` the AU logits
        are those of the last frame only (k = 1: the Big pathway sees one frame at a time), else of every
        frame."""
        c = self.config
        if not self.split:
            transform = lambda b: standardize_big(b, mean, std)
            out, _ = predict_frames(self.model, self.variables, big_u8, small, big_transform=transform,
                                    forward=self.forward)
            return out
        out = {}
        if self.wave_config is not None:
            waves = jax.device_get(_waves_only(self.wave_config)(self.wave_vars, jnp.asarray(small)))
            out.update({k: np.asarray(v)[:, 0] for k, v in waves.items()})
        if self.au_config is not None:
            big = standardize_big(big_u8[-1:], mean, std)
            small0 = np.zeros((1, c.small_size, c.small_size, 3), np.float32)
            out["au"] = np.asarray(jax.device_get(_au_forward(self.au_config)(self.au_vars, big, small0)["au"]))
        return out

    def estimate(self, big_u8: np.ndarray, mean: float, std: float, small: np.ndarray, fps: float,
                 start_frame: int = 0) -> WindowEstimate:
        """The window's `WindowEstimate` (its frames start at `start_frame`)."""
        out = self.outputs(big_u8, mean, std, small)
        n = big_u8.shape[0]
        au = out.get("au")
        probs = None
        if au is not None:
            probs = 1.0 / (1.0 + np.exp(-au[-1].astype(np.float64)))
        return WindowEstimate(
            start_s=start_frame / fps, end_s=(start_frame + n) / fps,
            hr=quality.rate_estimate(out["bvp"], fps, "hr") if "bvp" in out else None,
            rr=quality.rate_estimate(out["resp"], fps, "rr") if "resp" in out else None,
            au_probs=probs)


class WindowStream:
    """Estimates of every window (`window_bounds`) of a video whose (B, B, 3) uint8 face crops arrive in
    order, a block at a time (`push`); only the last window's frames are kept (`FrameBuffer`).

    Attributes:
      estimates: the `WindowEstimate` of each window completed so far, in time order.
    """

    def __init__(self, model: BigSmall, variables, num_frames: int, fps: float, window_s: float,
                 stride_s: float, source: str = "<video>", forward=None):
        bounds = window_bounds(num_frames, fps, window_s, stride_s, source)
        self.runner = WindowModel(model, variables, forward)
        self.fps, self.size = fps, bounds[0][1] - bounds[0][0]
        self.buffer = FrameBuffer(self.size, model.config.big_size, model.config.small_size)
        self.starts = {stop: start for start, stop in bounds}
        self.seen = 0
        self.estimates: list[WindowEstimate] = []

    def push(self, crops_u8: np.ndarray) -> None:
        """Adds the next (n, B, B, 3) uint8 crops; runs the windows that end among them."""
        for crop in crops_u8:
            self.buffer.push(crop)
            self.seen += 1
            if self.seen in self.starts:
                self.estimates.append(self.runner.estimate(*self.buffer.window(self.size), self.fps,
                                                           start_frame=self.starts[self.seen]))


__all__ = ["AU_THRESHOLD", "FrameBuffer", "WindowEstimate", "WindowModel", "WindowStream", "window_bounds"]
