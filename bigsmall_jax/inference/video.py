"""Run a BigSmall checkpoint on any face video: pulse, respiration and action units per frame.

Usage::

    python -m bigsmall_jax.infer VIDEO --checkpoint DIR --output OUT.json [--fps F] [--no-face-crop]
        [--face-crop first|every|median] [--crop-every N] [--plot OUT.png]

The whole pipeline of the paper, on a video file (anything FFmpeg decodes) or a folder of images:

1. read every frame (`video_io.read_video`; the frame rate from the file unless ``--fps`` is given);
2. face crop (`preprocess.face_boxes`: OpenCV's Haar cascade on the first frame by default, enlarged 1.5x
   and squared, the paper's recipe), or the whole frame with ``--no-face-crop``;
3. the crops resized to the model's Big size (INTER_AREA), then Big (standardized) and Small
   (diff-normalized) frames by `preprocess.preprocess_recording`;
4. clips of the model's ``n_segment`` frames; when the frame count is not a multiple of it, the last frame
   is repeated to fill the last clip and the outputs of those frames are dropped again (reported as
   ``n_padded_frames``);
5. the jitted model, in batches of clips.

The JSON has ``fps``, ``num_frames``, ``n_padded_frames``, ``face_box`` and, for each head the checkpoint
has: ``bvp`` (per frame, diff-normalized, as the model outputs it) with ``hr_bpm`` (`metrics.wave_to_rate`),
``resp`` with ``rr_bpm``, ``au_names`` with ``au_probs`` (frames x 12 sigmoid probabilities). A rate is
null when the video is too short (or its frame rate too low) for the rate's band-pass. ``--plot`` draws
the face with its crop box, both waves with their rates and the AU activations as a heatmap.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bigsmall_jax.errors import UserError, cli_main, file_error

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
      seconds: wall time of each stage ("preprocess", "model", "rates").
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
    from bigsmall_jax.datasets.preprocess import crop_frames, resize_area

    out = np.empty((frames.shape[0], size, size, 3), np.uint8)
    for start in tqdm(range(0, frames.shape[0], _BLOCK), desc="face crop", unit="block", leave=False,
                      disable=None if progress is None else not progress):
        stop = min(frames.shape[0], start + _BLOCK)
        out[start:stop] = resize_area(crop_frames(frames[start:stop], boxes[start:stop]), size).astype(np.uint8)
    return out


def _rate(wave: np.ndarray, fps: float, kind: str) -> float | None:
    from bigsmall_jax.evaluation import metrics

    try:
        return metrics.wave_to_rate(wave, fps, kind)
    except UserError as e:
        log.warning("no %s: %s", "heart rate" if kind == "hr" else "respiration rate", e)
        return None


def infer_frames(model, variables, frames: np.ndarray, fps: float, face_crop: str | None = "first",
                 crop_every: int = 30, batch_clips: int = 16, source: str = "<frames>",
                 progress: bool | None = None) -> Inference:
    """The whole pipeline on decoded frames: face crop, Big/Small preprocessing, the model, rates.

    Args:
      model, variables: from `checkpoint.load_checkpoint`.
      frames: (T, H, W, 3) uint8 RGB, T >= the model's n_segment.
      fps: frame rate in Hz (> 0).
      face_crop: "first" (Haar cascade on frame 0, the box kept), "every" (detect every `crop_every`
        frames), "median" (median of those boxes), or None / "none" (the frames are already face crops).
      crop_every: detection period in frames for "every" / "median".
      batch_clips: clips per forward pass.
      source: the file, for error messages.
      progress: tqdm bars (None: only on a terminal).

    Raises:
      UserError: too few frames, bad fps, no face found (suggesting --no-face-crop).
    """
    from bigsmall_jax.datasets.preprocess import PreprocessConfig, face_boxes, preprocess_recording, standardize_big
    from bigsmall_jax.datasets.recording import Recording
    from bigsmall_jax.evaluation.evaluate import predict_frames

    config = model.config
    face_crop = face_crop or "none"
    if face_crop not in (*CROP_MODES, "none"):
        raise UserError(f"unknown face crop mode {face_crop!r}; valid: {', '.join(CROP_MODES)}, none")
    if not (math.isfinite(fps) and fps > 0):
        raise file_error(source, f"frame rate must be a positive number of frames per second, got {fps!r}")
    t = int(frames.shape[0])
    if t < config.n_segment:
        raise file_error(source, f"has {t} frame(s), fewer than one clip of {config.n_segment} frames the model "
                                 "takes (n_segment)")
    seconds = {}
    start = time.perf_counter()
    pp = PreprocessConfig(big_size=config.big_size, small_size=config.small_size, face_crop=face_crop,
                          crop_every=int(crop_every), n_segment=config.n_segment)
    try:
        boxes = face_boxes(frames, pp, source)
    except UserError as e:
        raise file_error(source, "no face found by the Haar cascade"
                                 + (" in the first frame" if face_crop == "first" else "")
                                 + "; if the video is already cropped to the face, pass --no-face-crop") from e
    # Crop + resize once here (the boxes are also reported); the 'none' crop of preprocessing then sees frames
    # of exactly the Big size, which INTER_AREA copies unchanged: the same result as cropping inside it.
    crops = crop_and_resize(frames, boxes, config.big_size, progress)
    rec = Recording(name=Path(source).stem, subject="", frames=crops, fps=float(fps), source=source)
    video = preprocess_recording(rec, dataclasses.replace(pp, face_crop="none"))
    del crops, rec
    seconds["preprocess"] = time.perf_counter() - start

    start = time.perf_counter()
    standardize = lambda b: standardize_big(b, video.big_mean, video.big_std)
    outputs, n_pad = predict_frames(model, variables, video.big_u8, video.small, batch_clips,
                                    big_transform=standardize, progress=progress, desc="model")
    seconds["model"] = time.perf_counter() - start
    start = time.perf_counter()
    result = Inference(fps=float(fps), num_frames=t, n_padded_frames=n_pad, boxes=boxes, face_crop=face_crop,
                       outputs=outputs, seconds=seconds)
    if "bvp" in outputs:
        result.hr_bpm = _rate(outputs["bvp"], fps, "hr")
    if "resp" in outputs:
        result.rr_bpm = _rate(outputs["resp"], fps, "rr")
    seconds["rates"] = time.perf_counter() - start
    if n_pad:
        log.info("%s: %d frames are not a whole number of %d-frame clips; repeated the last frame %d time(s) "
                 "and dropped those outputs", source, t, config.n_segment, n_pad)
    return result


def to_json(result: Inference, video: str = "", checkpoint: str = "") -> dict[str, Any]:
    """The JSON document of one inference (keys a model lacks are absent)."""
    from bigsmall_jax.datasets.recording import AU_NAMES

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
    doc["seconds"] = {k: round(v, 4) for k, v in result.seconds.items()}
    return doc


def plot_inference(result: Inference, frame: np.ndarray, path_png, title: str = "") -> Path:
    """The face (frame 0 with its crop box), the pulse and respiration waves with their rates, and the AU
    probabilities over time as a heatmap; panels for heads the model lacks are left out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from bigsmall_jax.evaluation import metrics
    from bigsmall_jax.evaluation.plots import save_png

    panels = [k for k in ("bvp", "resp", "au") if k in result.outputs]
    heights = [3 if k == "au" else 2 for k in panels]
    fig = Figure(figsize=(12, 1.2 + 1.6 * sum(heights) / 2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(panels), 2, width_ratios=(1, 3), height_ratios=heights)
    ax_face = fig.add_subplot(grid[:, 0])
    ax_face.imshow(frame)
    x, y, w, h = (int(v) for v in result.boxes[0])
    if result.face_crop != "none":
        ax_face.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, color="lime", lw=2))
    ax_face.set_title(f"frame 0, crop: {result.face_crop}")
    ax_face.set_axis_off()
    t = np.arange(result.num_frames) / result.fps
    axes = []
    for row, kind in enumerate(panels):
        ax = fig.add_subplot(grid[row, 1], sharex=axes[0] if axes else None)
        axes.append(ax)
        if kind == "au":
            probs = result.au_probs
            n_au = probs.shape[1]
            image = ax.imshow(probs.T, aspect="auto", origin="upper", cmap="viridis", vmin=0, vmax=1,
                              interpolation="nearest", extent=(t[0], t[-1] + 1 / result.fps, n_au - 0.5, -0.5))
            names = to_json(result)["au_names"]
            ax.set_yticks(range(n_au), names, fontsize="small")
            ax.set_title("action units: predicted probability")
            fig.colorbar(image, ax=ax, pad=0.01, fraction=0.03)
            continue
        rate_kind, rate = ("hr", result.hr_bpm) if kind == "bvp" else ("rr", result.rr_bpm)
        unit = "bpm" if kind == "bvp" else "breaths/min"
        wave = result.outputs[kind]
        try:
            shown = metrics.process_wave(wave, result.fps, rate_kind)
            label = "band-passed (as scored)"
        except UserError:
            shown, label = np.cumsum(wave), "cumulative sum"
        ax.plot(t, shown, lw=1, color="tab:red" if kind == "bvp" else "tab:blue", label=label)
        name = "pulse" if kind == "bvp" else "respiration"
        ax.set_title(f"{name}: {rate:.1f} {unit}" if rate is not None else f"{name}: rate n/a (video too short)")
        ax.set_ylabel("a.u.")
        ax.legend(loc="upper right", fontsize="x-small")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    return save_png(fig, path_png)


# ----------------------------------------------------------------------------------------------------------
# Command line.


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.infer", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="video file (mp4, avi, mkv, ...) or folder of images (then give --fps)")
    p.add_argument("--checkpoint", required=True, help="model checkpoint directory, training workdir, or .pth")
    p.add_argument("--output", required=True, help="JSON file to write")
    p.add_argument("--fps", type=float, default=None, help="frame rate in Hz (default: from the file)")
    p.add_argument("--no-face-crop", action="store_true", help="the video is already cropped to the face")
    p.add_argument("--face-crop", choices=CROP_MODES, default="first",
                   help="face detection: on the first frame (default), every --crop-every frames, or the "
                        "median of those boxes")
    p.add_argument("--crop-every", type=int, default=30, help="detection period in frames (default: 30)")
    p.add_argument("--batch-clips", type=int, default=16, help="clips per forward pass (default: 16)")
    p.add_argument("--plot", default=None, help="PNG with the face, waves and AU activations")
    return p.parse_args(argv)


def _check_out(path: Path, suffix: str, flag: str) -> None:
    if path.suffix.lower() != suffix:
        raise file_error(path, f"{flag} must be a {suffix} file")
    if path.is_dir():
        raise file_error(path, f"{flag} is a directory")
    if not path.parent.is_dir():
        raise file_error(path, f"the folder to write {flag} into does not exist")


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    output = Path(args.output)
    plot = Path(args.plot) if args.plot else None
    _check_out(output, ".json", "--output")
    if plot is not None:
        _check_out(plot, ".png", "--plot")
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps > 0):
        raise file_error(args.video, f"--fps must be a positive number of frames per second, got {args.fps:g}")
    if args.fps is None and Path(args.video).is_dir():
        raise file_error(args.video, "a folder of images has no frame rate; pass --fps")
    if args.crop_every < 1:
        raise UserError(f"--crop-every must be >= 1, got {args.crop_every}")
    if args.batch_clips < 1:
        raise UserError(f"--batch-clips must be >= 1, got {args.batch_clips}")
    from bigsmall_jax.checkpoints import load_checkpoint, read_config
    from bigsmall_jax.datasets.video_io import read_video

    checkpoint = Path(args.checkpoint)
    if checkpoint.suffix != ".pth":  # a bad checkpoint fails before the video is decoded
        if not checkpoint.exists():
            raise file_error(checkpoint, "no such checkpoint directory")
        read_config(checkpoint)
    elif not checkpoint.is_file():
        raise file_error(checkpoint, "no such file")
    # Decode before JAX starts its threads: FFmpeg runs in a subprocess (fork).
    start = time.perf_counter()
    frames, fps = read_video(args.video, fps=args.fps)
    read_s = time.perf_counter() - start
    from bigsmall_jax.runtime import configure_cpu_runtime

    configure_cpu_runtime(purpose="infer")  # the XLA:CPU presets the benchmark measured; GPU/TPU unaffected
    start = time.perf_counter()
    model, variables = load_checkpoint(checkpoint)
    load_s = time.perf_counter() - start
    log.info("%s: %d frames of %dx%d at %.3f fps (%.1f s)", args.video, frames.shape[0], frames.shape[2],
             frames.shape[1], fps, frames.shape[0] / fps)
    result = infer_frames(model, variables, frames, fps, None if args.no_face_crop else args.face_crop,
                          args.crop_every, args.batch_clips, source=os.fspath(args.video))
    result.seconds = {"load_checkpoint": load_s, "read_video": read_s, **result.seconds}
    total = sum(v for k, v in result.seconds.items() if k != "load_checkpoint")
    result.seconds["total_without_checkpoint"] = total
    doc = to_json(result, os.fspath(args.video), os.fspath(args.checkpoint))
    doc["frames_per_s"] = round(result.num_frames / total, 2) if total > 0 else None

    written: list[Path] = []
    try:
        if plot is not None:
            tmp_plot = plot.parent / f".{plot.stem}.{os.getpid()}.tmp.png"
            plot_inference(result, frames[0], tmp_plot, title=Path(args.video).name)
            written.append(tmp_plot)
        tmp_json = output.parent / f".{output.stem}.{os.getpid()}.tmp.json"
        # 0o666 minus the umask, like any new file (mkstemp would make it private).
        fd = os.open(tmp_json, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        written.append(tmp_json)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, allow_nan=False)
            f.write("\n")
        if plot is not None:
            os.replace(written[0], plot)
        os.replace(tmp_json, output)
    finally:
        for p in written:
            p.unlink(missing_ok=True)
    rates = {k: doc[k] for k in ("hr_bpm", "rr_bpm") if k in doc}
    log.info("%s: %d frames in %.2f s (%.1f frames/s); %s", args.video, result.num_frames, total,
             doc["frames_per_s"] or float("nan"), rates)
    print(json.dumps({"output": os.fspath(output), "plot": os.fspath(plot) if plot else None,
                      "fps": fps, "num_frames": result.num_frames, "n_padded_frames": result.n_padded_frames,
                      **rates, "frames_per_s": doc["frames_per_s"]}))


__all__ = ["Inference", "crop_and_resize", "infer_frames", "main", "plot_inference", "to_json"]

if __name__ == "__main__":
    main()
