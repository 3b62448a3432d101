"""Run a BigSmall checkpoint on any face video: pulse, respiration and action units per frame.

Usage::

    python -m bigsmall_jax.infer VIDEO [--checkpoint DIR|NAME|FILE.onnx] [--output OUT.json] [--fps F] [--no-face-crop]
        [--face-crop first|every|median] [--crop-every N] [--plot OUT.png] [--window-s W --stride-s S]
        [--runtime jax|onnx]
    python -m bigsmall_jax.infer --list-models

Without ``--checkpoint`` the shipped ``bp4d-fold1`` model runs (the paper's published BP4D+ fold-1
single-task models, MIT licence; see ``--list-models``), and the JSON goes to ``VIDEO_STEM.json`` beside
the working directory unless ``--output`` says otherwise.

The whole pipeline of the paper (`bigsmall_jax.inference.video`), on a video file (anything FFmpeg
decodes) or a folder of images: every frame read (the frame rate from the file unless ``--fps`` is
given), the face cropped (OpenCV's Haar cascade on the first frame by default, enlarged 1.5x and
squared, the paper's recipe; the whole frame with ``--no-face-crop``), Big and Small frames, clips of the
model's ``n_segment`` frames (the last frame repeated to fill the last clip, reported as
``n_padded_frames``), and the jitted model in batches of clips.

The JSON has ``fps``, ``num_frames``, ``n_padded_frames``, ``face_box`` and, for each head the checkpoint
has: ``bvp`` (per frame, diff-normalized, as the model outputs it) with ``hr_bpm`` (`signals.wave_to_rate`),
``resp`` with ``rr_bpm``, ``au_names`` with ``au_probs`` (frames x 12 sigmoid probabilities). A rate is
null when the video is too short (or its frame rate too low) for the rate's band-pass. Outputs that are NaN
or inf (weights that overflow) are an error naming the checkpoint, and nothing is written. ``--plot`` draws
the face with its crop box, both waves with their rates and the AU activations as a heatmap.
``--runtime onnx`` runs an ``.onnx`` file from ``python -m bigsmall_jax.export`` (given as ``--checkpoint``)
with ONNX Runtime instead of the JAX model; the JSON is the same within float32 rounding.

Like a physiological monitor, it adds: ``hr_snr_db`` / ``rr_snr_db`` (the SNR of each wave around its own
spectral peak, `evaluation.quality`) with ``hr_low_quality`` / ``rr_low_quality`` (true: do not trust the
number), ``hrv`` (beat times, inter-beat intervals, mean IBI, SDNN, RMSSD, pNN50 from the pulse's peaks;
its ``detector`` field states the peak detector and its refractory limit, `evaluation.hrv`), and with
``--window-s W --stride-s S`` ``windows``: heart and breathing rate with their quality over windows of W
seconds every S seconds, each as `infer` gives on that stretch of video alone (`inference.windows`), also
plotted. The plot marks the beats on the pulse.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bigsmall_jax.checkpoints.published import DEFAULT_MODEL, is_published, list_models
from bigsmall_jax.cli import check_not_inside, check_output_file
from bigsmall_jax.errors import UserError, cli_main, file_error
from bigsmall_jax.inference.runners import RUNTIMES, check_runtime
from bigsmall_jax.inference.video import CROP_MODES, infer_video, result_document, write_outputs

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of ``python -m bigsmall_jax.infer`` (`argv`: None for ``sys.argv``)."""
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.infer", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", nargs="?", help="video file (mp4, avi, mkv, ...) or folder of images (then give --fps)")
    p.add_argument("--checkpoint", default=None,
                   help=f"shipped model name, model checkpoint directory, training workdir, or .pth (default: the "
                        f"shipped {DEFAULT_MODEL!r})")
    p.add_argument("--list-models", action="store_true", help="list the shipped models and exit")
    p.add_argument("--output", default=None, help="JSON file to write (default: VIDEO_STEM.json here)")
    p.add_argument("--fps", type=float, default=None, help="frame rate in Hz (default: from the file)")
    p.add_argument("--no-face-crop", action="store_true", help="the video is already cropped to the face")
    p.add_argument("--face-crop", choices=CROP_MODES, default="first",
                   help="face detection: on the first frame (default), every --crop-every frames, or the "
                        "median of those boxes")
    p.add_argument("--crop-every", type=int, default=30, help="detection period in frames (default: 30)")
    p.add_argument("--batch-clips", type=int, default=16, help="clips per forward pass (default: 16)")
    p.add_argument("--plot", default=None, help="PNG with the face, waves and AU activations")
    p.add_argument("--window-s", type=float, default=None, help="also rates over windows of this many seconds")
    p.add_argument("--stride-s", type=float, default=None, help="the windows' stride in seconds (default: "
                                                                 "--window-s)")
    p.add_argument("--runtime", choices=RUNTIMES, default="jax",
                   help="jax (default) or onnx: run an .onnx file from python -m bigsmall_jax.export with ONNX Runtime")
    args = p.parse_args(argv)
    if args.video is None and not args.list_models:
        p.error("the following arguments are required: video")
    return args


def _check_args(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """Checks the flags before anything is read; returns the output JSON and plot paths."""
    output = check_output_file(args.output or Path(args.video).stem + ".json", ".json", "--output")
    plot = check_output_file(args.plot, ".png", "--plot") if args.plot else None
    inputs = [p for p in (args.video, args.checkpoint) if p is not None and not is_published(p)]
    check_not_inside(output, inputs, "--output")
    if plot is not None:
        check_not_inside(plot, inputs, "--plot")
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps > 0):
        raise file_error(args.video, f"--fps must be a positive number of frames per second, got {args.fps:g}")
    if args.fps is None and Path(args.video).is_dir():
        raise file_error(args.video, "a folder of images has no frame rate; pass --fps")
    if args.crop_every < 1:
        raise UserError(f"--crop-every must be >= 1, got {args.crop_every}")
    if args.batch_clips < 1:
        raise UserError(f"--batch-clips must be >= 1, got {args.batch_clips}")
    check_runtime(args.runtime, args.checkpoint)
    if args.stride_s is not None and args.window_s is None:
        raise UserError("--stride-s needs --window-s")
    for flag, value in (("--window-s", args.window_s), ("--stride-s", args.stride_s)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"{flag} must be a positive number of seconds, got {value:g}")
    return output, plot


def check_finite_outputs(result, video: str | os.PathLike, checkpoint: str | os.PathLike) -> None:
    """Refuses outputs holding NaN or inf (weights that overflow on this video): no rate or JSON could be made.

    Raises:
      UserError: naming the checkpoint, the head and how many frames are not finite.
    """
    for name, values in result.outputs.items():
        bad = ~np.isfinite(np.asarray(values, np.float64))
        if bad.any():
            frames = int(bad.reshape(len(bad), -1).any(axis=1).sum())
            raise file_error(checkpoint, f"the model's {name} output is NaN or inf on {frames} of {len(bad)} frames "
                                         f"of {video}; its weights overflow (diverged or damaged): nothing written")


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    """Runs the checkpoint on the video, writes the JSON (and plot) and prints a one-line JSON summary."""
    args = parse_args(argv)
    if args.list_models:
        for name, description in list_models().items():
            print(f"{name}{' (default)' if name == DEFAULT_MODEL else ''}: {description}")
        return
    if args.checkpoint is None:
        args.checkpoint = DEFAULT_MODEL
        log.info("no --checkpoint: using the shipped model %r (%s)", DEFAULT_MODEL, list_models()[DEFAULT_MODEL])
    output, plot = _check_args(args)
    checkpoint = args.checkpoint
    result, frame = infer_video(args.video, checkpoint, args.fps, None if args.no_face_crop else args.face_crop,
                                args.crop_every, args.batch_clips, args.window_s, args.stride_s,
                                args.runtime)
    check_finite_outputs(result, args.video, checkpoint)
    total = result.seconds["total_without_checkpoint"]
    doc = result_document(result, os.fspath(args.video), os.fspath(checkpoint))
    doc["frames_per_s"] = round(result.num_frames / total, 2) if total > 0 else None
    write_outputs(doc, output, result, frame, plot, title=Path(args.video).name)
    rates = {k: doc[k] for k in ("hr_bpm", "hr_low_quality", "rr_bpm", "rr_low_quality") if k in doc}
    if doc.get("hrv"):
        rates.update({k: doc["hrv"][k] for k in ("mean_ibi_ms", "sdnn_ms", "rmssd_ms", "pnn50_percent")})
    log.info("%s: %d frames in %.2f s (%.1f frames/s); %s", args.video, result.num_frames, total,
             doc["frames_per_s"] or float("nan"), rates)
    print(json.dumps({"output": os.fspath(output), "plot": os.fspath(plot) if plot else None,
                      "checkpoint": os.fspath(checkpoint),
                      "fps": result.fps, "num_frames": result.num_frames, "n_padded_frames": result.n_padded_frames,
                      **rates, "frames_per_s": doc["frames_per_s"]}))


if __name__ == "__main__":
    main()
