"""Run a BigSmall checkpoint on any face video: pulse, respiration and action units per frame.

Usage::

    python -m bigsmall_jax.infer VIDEO --checkpoint DIR --output OUT.json [--fps F] [--no-face-crop]
        [--face-crop first|every|median] [--crop-every N] [--plot OUT.png]

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

from bigsmall_jax.cli import check_not_inside, check_output_file
from bigsmall_jax.errors import UserError, cli_main, file_error
from bigsmall_jax.inference.video import CROP_MODES, infer_video, result_document, write_outputs

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of ``python -m bigsmall_jax.infer`` (`argv`: None for ``sys.argv``)."""
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


def _check_args(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """Checks the flags before anything is read; returns the output JSON and plot paths."""
    output = check_output_file(args.output, ".json", "--output")
    plot = check_output_file(args.plot, ".png", "--plot") if args.plot else None
    check_not_inside(output, [args.video, args.checkpoint], "--output")
    if plot is not None:
        check_not_inside(plot, [args.video, args.checkpoint], "--plot")
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps > 0):
        raise file_error(args.video, f"--fps must be a positive number of frames per second, got {args.fps:g}")
    if args.fps is None and Path(args.video).is_dir():
        raise file_error(args.video, "a folder of images has no frame rate; pass --fps")
    if args.crop_every < 1:
        raise UserError(f"--crop-every must be >= 1, got {args.crop_every}")
    if args.batch_clips < 1:
        raise UserError(f"--batch-clips must be >= 1, got {args.batch_clips}")
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
    output, plot = _check_args(args)
    result, frame = infer_video(args.video, args.checkpoint, args.fps,
                                None if args.no_face_crop else args.face_crop, args.crop_every, args.batch_clips)
    check_finite_outputs(result, args.video, args.checkpoint)
    total = result.seconds["total_without_checkpoint"]
    doc = result_document(result, os.fspath(args.video), os.fspath(args.checkpoint))
    doc["frames_per_s"] = round(result.num_frames / total, 2) if total > 0 else None
    write_outputs(doc, output, result, frame, plot, title=Path(args.video).name)
    rates = {k: doc[k] for k in ("hr_bpm", "rr_bpm") if k in doc}
    log.info("%s: %d frames in %.2f s (%.1f frames/s); %s", args.video, result.num_frames, total,
             doc["frames_per_s"] or float("nan"), rates)
    print(json.dumps({"output": os.fspath(output), "plot": os.fspath(plot) if plot else None,
                      "fps": result.fps, "num_frames": result.num_frames, "n_padded_frames": result.n_padded_frames,
                      **rates, "frames_per_s": doc["frames_per_s"]}))


if __name__ == "__main__":
    main()
