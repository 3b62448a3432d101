"""Peak memory of ``infer`` on long videos, against the size of their raw frames.

`benchmark_memory` writes a 640x480 30-fps video of each length (a 2-s clip of a moving pattern, encoded
once with H.264 and looped by FFmpeg without re-encoding, so a 10-minute file takes seconds), then runs
`bigsmall_jax.inference.video.infer_video` on it in a fresh Python process (``python -m
bigsmall_jax.benchmark.memory VIDEO CHECKPOINT``) and reads that process's peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). The model is the paper's BigSmall with random weights
(memory does not depend on the weights), the whole frame is the face crop (``--no-face-crop``; the face
box does not change what is held). ``baseline`` is the same process with the checkpoint loaded and the
model compiled on one batch but no video: what any run costs. The figures per length are:

* ``raw_frames_mib``: T x 480 x 640 x 3 bytes, the decoded video (what reading it whole would hold);
* ``peak_rss_mib``: the child's peak RSS; ``over_baseline_mib``: minus the baseline's;
* ``peak_over_raw``: peak_rss_mib / raw_frames_mib.
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import jax
import numpy as np

from bigsmall_jax.checkpoints.model_dir import save_checkpoint
from bigsmall_jax.datasets.video_io import write_video
from bigsmall_jax.errors import UserError
from bigsmall_jax.model import build_model
from bigsmall_jax.model.bigsmall import init_variables

log = logging.getLogger(__name__)

MEMORY_MINUTES = (1.0, 10.0)
HEIGHT, WIDTH, FPS = 480, 640, 30.0
_LOOP_S = 2.0  # seconds of the clip that is looped


def _pattern_clip(seconds: float, height: int, width: int, fps: float) -> np.ndarray:
    """(n, H, W, 3) uint8: smooth drifting colour bands (compress well, change every frame)."""
    n = int(round(seconds * fps))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        phase = 2 * np.pi * i / n  # one period over the clip: the loop is seamless
        for c in range(3):
            frames[i, :, :, c] = 128 + 60 * np.sin(x / (40 + 10 * c) + y / 70 + phase + c)
    return frames


def write_looped_video(path: str | Path, minutes: float, height: int = HEIGHT, width: int = WIDTH,
                       fps: float = FPS) -> int:
    """Writes an H.264 mp4 of `minutes` minutes: a `_LOOP_S`-second clip looped without re-encoding.

    Returns:
      The number of frames written (minutes x 60 x fps).
    """
    path = Path(path)
    clip = path.with_name(path.stem + "_clip.mp4")
    write_video(clip, _pattern_clip(_LOOP_S, height, width, fps), fps)
    n = int(round(minutes * 60 * fps))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-stream_loop", "-1", "-i",
                    str(clip), "-c", "copy", "-frames:v", str(n), str(path)], check=True)
    clip.unlink()
    return n


def _paper_checkpoint(folder: Path) -> Path:
    """The paper's BigSmall with random weights, saved as a checkpoint directory."""
    model = build_model()
    variables = init_variables(model, jax.random.key(0))
    return save_checkpoint(folder / "bigsmall", model.config, variables)


def _child(argv: Sequence[str]) -> dict[str, Any]:
    """Runs this module in a fresh process; returns the JSON it prints."""
    proc = subprocess.run([sys.executable, "-m", "bigsmall_jax.benchmark.memory", *argv], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise UserError(f"memory benchmark child failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def benchmark_memory(minutes: Sequence[float] = MEMORY_MINUTES, batch_clips: int = 16) -> dict[str, Any]:
    """Peak RSS of ``infer`` on videos of each length (see the module docstring).

    Returns:
      {"height", "width", "fps", "batch_clips", "baseline_rss_mib", "videos": [{"minutes", "frames",
      "raw_frames_mib", "peak_rss_mib", "over_baseline_mib", "peak_over_raw", "infer_s"}, ...]}.
    """
    with tempfile.TemporaryDirectory(prefix="bigsmall_memory_") as tmp:
        tmp = Path(tmp)
        checkpoint = _paper_checkpoint(tmp)
        baseline = _child(["--baseline", str(checkpoint), "--batch-clips", str(batch_clips)])["peak_rss_mib"]
        videos = []
        for m in minutes:
            video = tmp / f"video_{m:g}min.mp4"
            n = write_looped_video(video, m)
            got = _child([str(video), str(checkpoint), "--batch-clips", str(batch_clips)])
            if got["num_frames"] != n:
                raise UserError(f"{video}: wrote {n} frames but infer read {got['num_frames']}")
            raw = n * HEIGHT * WIDTH * 3 / 2**20
            videos.append({"minutes": m, "frames": n, "raw_frames_mib": round(raw, 1),
                           "peak_rss_mib": got["peak_rss_mib"],
                           "over_baseline_mib": round(got["peak_rss_mib"] - baseline, 1),
                           "peak_over_raw": round(got["peak_rss_mib"] / raw, 4), "infer_s": got["seconds"]})
            log.info("memory: %g min (%d frames, %.0f MiB raw): peak RSS %.0f MiB", m, n, raw, got["peak_rss_mib"])
            video.unlink()
    return {"height": HEIGHT, "width": WIDTH, "fps": FPS, "batch_clips": batch_clips,
            "baseline_rss_mib": baseline, "videos": videos}


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def main(argv: Sequence[str] | None = None) -> None:
    """The measured child: ``VIDEO CHECKPOINT`` runs infer_video; ``--baseline CHECKPOINT`` loads the model and
    runs one batch of zeros. Prints {"peak_rss_mib", "num_frames", "seconds"} as JSON."""
    import argparse

    from bigsmall_jax.checkpoints.load import load_checkpoint
    from bigsmall_jax.evaluation.evaluate import predict_frames
    from bigsmall_jax.inference.video import infer_video
    from bigsmall_jax.runtime import configure_cpu_runtime

    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.benchmark.memory")
    p.add_argument("paths", nargs="+", help="VIDEO CHECKPOINT, or CHECKPOINT with --baseline")
    p.add_argument("--baseline", action="store_true")
    p.add_argument("--batch-clips", type=int, default=16)
    args = p.parse_args(argv)
    start = time.perf_counter()
    if args.baseline:
        configure_cpu_runtime(purpose="infer")
        model, variables = load_checkpoint(args.paths[0])
        c = model.config
        n = args.batch_clips * c.n_segment
        predict_frames(model, variables, np.zeros((n, c.big_size, c.big_size, 3), np.uint8),
                       np.zeros((n, c.small_size, c.small_size, 3), np.float32), args.batch_clips)
        frames = 0
    else:
        result, _ = infer_video(args.paths[0], args.paths[1], face_crop=None, batch_clips=args.batch_clips)
        frames = result.num_frames
    print(json.dumps({"peak_rss_mib": _peak_rss_mib(), "num_frames": frames,
                      "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
