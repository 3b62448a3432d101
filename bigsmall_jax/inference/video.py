"""Running a BigSmall checkpoint on any face video: pulse, respiration and action units per frame.

The whole pipeline of the paper, on a video file (anything FFmpeg decodes) or a folder of images:

1. the frames, decoded in blocks (`video_io.VideoFrames` for a file, `video_io.ArrayFrames` for frames in
   memory); the frame rate from the file unless given;
2. face crop (OpenCV's Haar cascade on the first frame by default, enlarged 1.5x and squared, the paper's
   recipe; `face_boxes.face_boxes`' logic), or the whole frame when the video is already a face crop;
3. the crops resized to the model's Big size (INTER_AREA), then Big (standardized) and Small
   (diff-normalized) frames with the statistics of the whole video (`datasets.stream`: a statistics pass,
   then a pass that feeds the model), equal to `preprocess.preprocess_recording`'s;
4. clips of the model's ``n_segment`` frames; when the frame count is not a multiple of it, the last frame
   is repeated to fill the last clip and the outputs of those frames are dropped again (reported as
   ``n_padded_frames``);
5. the jitted model (or an exported ONNX file in ONNX Runtime, `runners.OnnxRunner`), in batches of
   clips (`evaluation.evaluate.predict_stream`), and the rates of its waves (`signals.wave_to_rate`), none
   when no pixel of the face crop ever changes (`_unreliable_rates`), with their quality, the pulse's beats
   and HRV and, when asked, rates over sliding windows (`inference.physio`, `inference.windows`).

A file is never held whole in memory: one block of decoded frames, the per-frame boxes and the outputs.
`infer_video` runs it from a file, `result_document` makes the JSON document, `plot_inference` the figure
and `write_outputs` writes both (``python -m bigsmall_jax.infer``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from tqdm import tqdm

from bigsmall_jax import files
from bigsmall_jax.checkpoints.load import load_checkpoint
from bigsmall_jax.checkpoints.model_dir import read_config
from bigsmall_jax.checkpoints.published import is_published
from bigsmall_jax.datasets.face import NoFaceError
from bigsmall_jax.datasets.preprocess import PreprocessConfig, crop_resize_u8, standardize_big
from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.datasets.stream import BLOCK_FRAMES, ScannedVideo, scan_video
from bigsmall_jax.datasets.video_io import ArrayFrames, VideoFrames
from bigsmall_jax.errors import UserError, file_error
from bigsmall_jax.evaluation import signals
from bigsmall_jax.evaluation.evaluate import predict_stream
from bigsmall_jax.figures import new_figure, save_png
from bigsmall_jax.inference import physio as physio_lib
from bigsmall_jax.inference.runners import OnnxRunner, check_runtime
from bigsmall_jax.inference.windows import WindowStream
from bigsmall_jax.runtime import configure_cpu_runtime

log = logging.getLogger(__name__)

CROP_MODES = ("first", "every", "median")
_BLOCK = 128  # frames cropped and resized at a time


@dataclasses.dataclass
class Inference:
    """What `infer_frames` measured on one video.

    Attributes:
      fps: frame rate (Hz).
      num_frames: T.
      n_padded_frames: frames repeated at the end to fill the last clip (their outputs were dropped).
      boxes: (T, 4) int64 crop box (x, y, w, h) of every frame, in pixels of the input frames.
      face_crop: the crop mode used ("first", "every", "median" or "none").
      outputs: the model's heads: "bvp", "resp" (T,) float32 diff-normalized waves, "au" (T, n_au) logits.
      hr_bpm, rr_bpm: rates from the waves (None: no such head, or the video is too short for the band).
      seconds: wall time of each stage: "preprocess" (the face-box and statistics passes, decoding
        included), "model" (the last pass: decoding, Big and Small frames and the model), "rates".
      physio: rate quality, beats and HRV, and windows (`inference.physio.Physiology`).
    """

    fps: float
    num_frames: int
    n_padded_frames: int
    boxes: np.ndarray
    face_crop: str
    outputs: dict[str, np.ndarray]
    hr_bpm: float | None = None
    rr_bpm: float | None = None
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    physio: physio_lib.Physiology | None = None

    @property
    def au_probs(self) -> np.ndarray | None:
        """(T, n_au) sigmoid probabilities, or None without an AU head."""
        if "au" not in self.outputs:
            return None
        return (1.0 / (1.0 + np.exp(-self.outputs["au"].astype(np.float64)))).astype(np.float32)


def crop_and_resize(frames: np.ndarray, boxes: np.ndarray, size: int, progress: bool | None = None) -> np.ndarray:
    """Every frame cropped to its box and resized to (size, size) with INTER_AREA, as uint8.

    Args:
      frames: (T, H, W, 3) uint8 RGB.
      boxes: (T, 4) (x, y, w, h) per frame.
      size: output side in pixels.
      progress: tqdm bar over blocks of frames (None: only on a terminal).

    Returns:
      (T, size, size, 3) uint8: what `preprocess.preprocess_recording` computes from the same boxes (it
      resizes the uint8 crops, which OpenCV rounds back to integers).
    """
    out = np.empty((frames.shape[0], size, size, 3), np.uint8)
    for start in tqdm(range(0, frames.shape[0], _BLOCK), desc="face crop", unit="block", leave=False,
                      disable=None if progress is None else not progress):
        stop = min(frames.shape[0], start + _BLOCK)
        out[start:stop] = crop_resize_u8(frames[start:stop], boxes[start:stop], size)
    return out


def _rate(wave: np.ndarray, fps: float, kind: str) -> float | None:
    """The rate per minute of a (T,) diff-normalized wave (`signals.wave_to_rate`), None (with a warning)
    when the wave is too short for the band-pass."""
    try:
        return signals.wave_to_rate(wave, fps, kind)
    except UserError as e:
        log.warning("no %s: %s", "heart rate" if kind == "hr" else "respiration rate", e)
        return None


def _check_mode(fps: float, face_crop: str, source: str) -> None:
    """Raises `UserError` for an unknown crop mode or a frame rate that is not positive."""
    if face_crop not in (*CROP_MODES, "none"):
        raise UserError(f"unknown face crop mode {face_crop!r}; valid: {', '.join(CROP_MODES)}, none")
    if not (math.isfinite(fps) and fps > 0):
        raise file_error(source, f"frame rate must be a positive number of frames per second, got {fps!r}")


def _check_length(t: int, n_segment: int, source: str) -> None:
    """Raises `UserError` for fewer than `n_segment` frames."""
    if t < n_segment:
        raise file_error(source, f"has {t} frame(s), fewer than one clip of {n_segment} frames the "
                                 "model takes (n_segment)")


def _scan(frames: VideoFrames | ArrayFrames, pp: PreprocessConfig, source: str,
          progress: bool | None) -> ScannedVideo:
    """The face-box and statistics passes (`stream.scan_video`).

    Raises:
      UserError: no face found (suggesting --no-face-crop), and the source's errors.
    """
    try:
        return scan_video(frames, pp, source, progress=progress)
    except NoFaceError as e:
        raise file_error(source, "no face found by the Haar cascade"
                                 + (" in the first frame" if pp.face_crop == "first" else "")
                                 + "; if the video is already cropped to the face, pass --no-face-crop") from e


def _unreliable_rates(video: ScannedVideo, source: str) -> str | None:
    """Why no rate can be measured from a video, or None.

    The rates come from frame-to-frame change: the Small frames are normalized frame differences and the
    waves are per-frame changes. When no pixel of the face crops ever changes (the std of the frame
    differences is 0: a blank, frozen or constant video), the model still outputs waves, a pattern of its
    clip structure with no physiological content, and any rate read from them is meaningless.
    """
    if video.diff_std == 0.0:
        return f"{source}: no pixel of the face crop changes from frame to frame (a blank or frozen video)"
    return None


def _infer(model, variables, frames: VideoFrames | ArrayFrames, face_crop: str | None, crop_every: int,
           batch_clips: int, source: str, progress: bool | None, forward=None, window_s: float | None = None,
           stride_s: float | None = None) -> tuple[Inference, np.ndarray]:
    """`infer_frames` on any frame source; also returns (H, W, 3) uint8 frame 0. Windows (`window_s`) are
    estimated from the Big crops of the model's pass as they go by (`windows.WindowStream`)."""
    config = model.config
    face_crop = face_crop or "none"
    _check_mode(frames.fps, face_crop, source)
    start = time.perf_counter()
    pp = PreprocessConfig(big_size=config.big_size, small_size=config.small_size, face_crop=face_crop,
                          crop_every=int(crop_every), n_segment=config.n_segment)
    video = _scan(frames, pp, source, progress)
    t = video.num_frames
    _check_length(t, config.n_segment, source)
    seconds = {"preprocess": time.perf_counter() - start}

    windows = None
    if window_s is not None:
        stride_s = stride_s if stride_s is not None else window_s
        windows = WindowStream(model, variables, t, frames.fps, window_s, stride_s, source, forward)

    def blocks():
        for big, small in video.blocks(progress):
            if windows is not None:
                windows.push(big)
            yield big, small

    start = time.perf_counter()
    standardize = lambda b: standardize_big(b, video.big_mean, video.big_std)
    outputs, n_pad = predict_stream(model, variables, blocks(), t, batch_clips,
                                    big_transform=standardize, progress=progress, desc="model", forward=forward)
    seconds["model"] = time.perf_counter() - start
    start = time.perf_counter()
    result = Inference(fps=float(frames.fps), num_frames=t, n_padded_frames=n_pad, boxes=video.boxes,
                       face_crop=face_crop, outputs=outputs, seconds=seconds)
    reason = _unreliable_rates(video, source)
    if reason is not None and ({"bvp", "resp"} & set(outputs)):
        log.warning("%s; no heart or respiration rate is reported", reason)
    elif reason is None:
        if "bvp" in outputs:
            result.hr_bpm = _rate(outputs["bvp"], frames.fps, "hr")
        if "resp" in outputs:
            result.rr_bpm = _rate(outputs["resp"], frames.fps, "rr")
    waves = outputs if reason is None else {k: v for k, v in outputs.items() if k not in ("bvp", "resp")}
    result.physio = physio_lib.physiology(waves, frames.fps, windows.estimates if windows else None,
                                        window_s, stride_s)
    seconds["rates"] = time.perf_counter() - start
    if n_pad:
        log.info("%s: %d frames are not a whole number of %d-frame clips; repeated the last frame %d time(s) "
                 "and dropped those outputs", source, t, config.n_segment, n_pad)
    return result, video.first_frame


def infer_frames(model, variables, frames: np.ndarray, fps: float, face_crop: str | None = "first",
                 crop_every: int = 30, batch_clips: int = 16, source: str = "<frames>",
                 progress: bool | None = None, window_s: float | None = None,
                 stride_s: float | None = None, forward=None) -> Inference:
    """The whole pipeline on decoded frames: face crop, Big/Small preprocessing, the model, rates.

    Args:
      model, variables: from `checkpoints.model_dir.load_checkpoint`.
      frames: (T, H, W, 3) uint8 RGB, T >= the model's n_segment.
      fps: frame rate in Hz (> 0).
      face_crop: "first" (Haar cascade on frame 0, the box kept), "every" (detect every `crop_every`
        frames), "median" (median of those boxes), or None / "none" (the frames are already face crops).
      crop_every: detection period in frames for "every" / "median".
      batch_clips: clips per forward pass.
      source: the file, for error messages.
      progress: tqdm bars (None: only on a terminal).
      window_s, stride_s: also rates over windows of `window_s` seconds every `stride_s` seconds
        (`inference.windows`); None: whole video only.
      forward: what runs the batches (`runners.OnnxRunner`, with it as `model` too); default: the jitted model.

    Raises:
      UserError: too few frames, bad fps, no face found (suggesting --no-face-crop), a video shorter
        than the window.
    """
    _check_mode(fps, face_crop or "none", source)
    _check_length(frames.shape[0], model.config.n_segment, source)
    return _infer(model, variables, ArrayFrames(frames, fps, source), face_crop, crop_every, batch_clips,
                  source, progress, forward, window_s, stride_s)[0]


def result_document(result: Inference, video: str = "", checkpoint: str = "") -> dict[str, Any]:
    """The JSON document of one inference (keys a model lacks are absent)."""
    doc: dict[str, Any] = {
        "video": video,
        "checkpoint": checkpoint,
        "fps": result.fps,
        "num_frames": result.num_frames,
        "n_padded_frames": result.n_padded_frames,
        "face_crop": result.face_crop,
        "face_box": [int(v) for v in result.boxes[0]] if result.face_crop != "none" else None,
    }
    if result.face_crop == "every":
        doc["face_boxes"] = result.boxes.tolist()
    if "bvp" in result.outputs:
        doc["bvp"] = [float(v) for v in result.outputs["bvp"]]
        doc["hr_bpm"] = result.hr_bpm
    if "resp" in result.outputs:
        doc["resp"] = [float(v) for v in result.outputs["resp"]]
        doc["rr_bpm"] = result.rr_bpm
    probs = result.au_probs
    if probs is not None:
        n_au = probs.shape[1]
        doc["au_names"] = list(AU_NAMES) if n_au == len(AU_NAMES) else [f"AU{j}" for j in range(n_au)]
        doc["au_probs"] = [[round(float(p), 6) for p in row] for row in probs]
    if result.physio is not None:
        doc.update(physio_lib.document(result.physio))
    doc["seconds"] = {k: round(v, 4) for k, v in result.seconds.items()}
    return doc


def _draw_face(ax: Axes, result: Inference, frame: np.ndarray) -> None:
    """Frame 0 with its crop box (lime; none when the video was not cropped)."""
    ax.imshow(frame)
    x, y, w, h = (int(v) for v in result.boxes[0])
    if result.face_crop != "none":
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, color="lime", lw=2))
    ax.set_title(f"frame 0, crop: {result.face_crop}")
    ax.set_axis_off()


def _draw_au(fig: Figure, ax: Axes, result: Inference, t: np.ndarray) -> None:
    """The (T, n_au) AU probabilities as a heatmap over time `t` (s), one row per AU, with a colour bar."""
    probs = result.au_probs
    n_au = probs.shape[1]
    image = ax.imshow(probs.T, aspect="auto", origin="upper", cmap="viridis", vmin=0, vmax=1,
                      interpolation="nearest", extent=(t[0], t[-1] + 1 / result.fps, n_au - 0.5, -0.5))
    ax.set_yticks(range(n_au), result_document(result)["au_names"], fontsize="small")
    ax.set_title("action units: predicted probability")
    fig.colorbar(image, ax=ax, pad=0.01, fraction=0.03)


def _draw_wave(ax: Axes, result: Inference, kind: str, t: np.ndarray) -> None:
    """The ``bvp`` or ``resp`` wave over time `t` (s), band-passed as scored (else its cumulative sum when
    the video is too short), with its rate in the title."""
    rate_kind, rate = ("hr", result.hr_bpm) if kind == "bvp" else ("rr", result.rr_bpm)
    unit = "bpm" if kind == "bvp" else "breaths/min"
    wave = result.outputs[kind]
    try:
        shown = signals.process_wave(wave, result.fps, rate_kind)
        label = "band-passed (as scored)"
    except UserError:
        shown, label = np.cumsum(wave), "cumulative sum"
    ax.plot(t, shown, lw=1, color="tab:red" if kind == "bvp" else "tab:blue", label=label)
    if kind == "bvp" and result.physio is not None and label.startswith("band"):
        physio_lib.draw_beats(ax, result.physio, shown, result.fps)
    name = "pulse" if kind == "bvp" else "respiration"
    missing = f"{name}: rate n/a (too short or no change; see the log)"
    title = f"{name}: {rate:.1f} {unit}" if rate is not None else missing
    ax.set_title(title + (physio_lib.quality_note(result.physio, rate_kind) if result.physio else ""))
    ax.set_ylabel("a.u.")
    ax.legend(loc="upper right", fontsize="x-small")
    ax.grid(alpha=0.3)


def plot_inference(result: Inference, frame: np.ndarray, path_png, title: str = "") -> Path:
    """The face (frame 0 with its crop box), the pulse and respiration waves with their rates, and the AU
    probabilities over time as a heatmap; panels for heads the model lacks are left out.

    Args:
      result: the inference to draw.
      frame: (H, W, 3) uint8 RGB frame 0 of the video.
      path_png: output PNG.
      title: figure title.
    """
    panels = [k for k in ("bvp", "resp", "au") if k in result.outputs]
    if result.physio is not None and result.physio.windows:
        panels.append("rates")
    heights = [3 if k == "au" else 2 for k in panels]
    fig = new_figure(12, 1.2 + 1.6 * sum(heights) / 2, dpi=110)
    grid = fig.add_gridspec(len(panels), 2, width_ratios=(1, 3), height_ratios=heights)
    _draw_face(fig.add_subplot(grid[:, 0]), result, frame)
    t = np.arange(result.num_frames) / result.fps
    axes = []
    for row, kind in enumerate(panels):
        ax = fig.add_subplot(grid[row, 1], sharex=axes[0] if axes else None)
        axes.append(ax)
        if kind == "au":
            _draw_au(fig, ax, result, t)
        elif kind == "rates":
            physio_lib.draw_rates_over_time(ax, result.physio)
        else:
            _draw_wave(ax, result, kind, t)
    axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    return save_png(fig, path_png)


# ----------------------------------------------------------------------------------------------------------
# What ``python -m bigsmall_jax.infer`` runs.


def check_checkpoint(checkpoint: str | os.PathLike) -> str | Path:
    """Reads a checkpoint directory's config (or checks that a .pth or .onnx file exists), so that a bad
    checkpoint fails before the video is decoded; returns the path (a shipped model's name as it is)."""
    if is_published(checkpoint):
        return checkpoint
    checkpoint = Path(checkpoint)
    if checkpoint.suffix not in (".pth", ".onnx"):
        if not checkpoint.exists():
            raise file_error(checkpoint, "no such checkpoint directory")
        read_config(checkpoint)
    elif not checkpoint.is_file():
        raise file_error(checkpoint, "no such file")
    return checkpoint


def infer_video(video: str | os.PathLike, checkpoint: str | os.PathLike, fps: float | None = None,
                face_crop: str | None = "first", crop_every: int = 30, batch_clips: int = 16,
                window_s: float | None = None, stride_s: float | None = None,
                runtime: str = "jax") -> tuple[Inference, np.ndarray]:
    """Runs `infer_frames`' pipeline on a video file or folder of images, in bounded memory.

    The video is never held whole: it is decoded block by block, for the face box (a whole pass for
    "every" / "median", else frame 0), for the statistics of the recipe, and once more into the model
    (`bigsmall_jax.datasets.stream`); the results equal `infer_frames` on the decoded frames. The XLA:CPU
    presets for inference are set before the model loads (`runtime.configure_cpu_runtime`; GPU/TPU
    unaffected).

    Args:
      video: the video file or image folder.
      checkpoint: a shipped model's name, model checkpoint directory, training workdir, or .pth (see
        `check_checkpoint`).
      fps: frame rate in Hz; None: from the file.
      face_crop, crop_every, batch_clips, window_s, stride_s: as in `infer_frames`.
      runtime: "jax" (the checkpoint, jitted) or "onnx" (`checkpoint` is an exported ``.onnx`` file run by
        ONNX Runtime, `runners.OnnxRunner`).

    Returns:
      (the inference, its ``seconds`` also holding ``load_checkpoint`` and ``total_without_checkpoint``
      (decoding is part of ``preprocess`` and ``model``); (H, W, 3) uint8 frame 0 of the video).
    """
    check_runtime(runtime, checkpoint)
    checkpoint = check_checkpoint(checkpoint)
    frames = VideoFrames(video, fps=fps)  # opened once here: a bad video fails before the model loads
    configure_cpu_runtime(purpose="infer")
    start = time.perf_counter()
    if runtime == "onnx":
        model, variables = OnnxRunner(checkpoint), None
    else:
        model, variables = load_checkpoint(checkpoint)
    load_s = time.perf_counter() - start
    log.info("%s: %.3f fps; decoding in blocks of %d frames", video, frames.fps, BLOCK_FRAMES)
    result, frame0 = _infer(model, variables, frames, face_crop, crop_every, batch_clips, os.fspath(video),
                            progress=None, forward=model if runtime == "onnx" else None, window_s=window_s,
                            stride_s=stride_s)
    log.info("%s: %d frames of %dx%d (%.1f s)", video, result.num_frames, frame0.shape[1], frame0.shape[0],
             result.num_frames / result.fps)
    result.seconds = {"load_checkpoint": load_s, **result.seconds}
    result.seconds["total_without_checkpoint"] = sum(v for k, v in result.seconds.items() if k != "load_checkpoint")
    return result, frame0


def write_outputs(doc: dict, output: Path, result: Inference | None = None, frame: np.ndarray | None = None,
                  plot: Path | None = None, title: str = "") -> None:
    """Writes the JSON document `doc` to `output` (strict JSON: no NaN) and, with `plot`, the figure of
    `result` (`plot_inference` with `frame`, `title`).

    Both are written to temporary files first and renamed into place only once both are complete, the
    plot first: on failure neither target changes. New files get the ordinary permissions.
    """
    text = files.to_json(doc, sort_keys=False, allow_nan=False, indent=None)
    with contextlib.ExitStack() as stack:
        tmp_json = stack.enter_context(files.atomic_path(output, ".json"))
        if plot is not None:  # entered last, so renamed first
            plot_inference(result, frame, stack.enter_context(files.atomic_path(plot, ".png")), title)
        tmp_json.write_text(text)


__all__ = [
    "Inference", "check_checkpoint", "crop_and_resize", "infer_frames", "infer_video", "plot_inference",
    "result_document", "write_outputs",
]
