"""Live measurement's speed without the video decoder: frames decoded into memory first (as a camera hands
them over), then fed to `Monitor.update` as fast as it takes them (``python -m bigsmall_jax.benchmark.live
VIDEO``).

Prints the frames per second it sustains (face detection, cropping, buffering and every estimate
included), the process's CPU time per frame (all threads), the latency of the estimates (from the frame
that completes a window to its estimate) and the cost of an estimate apart from the per-frame work.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import numpy as np

from bigsmall_jax.checkpoints.published import DEFAULT_MODEL
from bigsmall_jax.datasets.video_io import read_video
from bigsmall_jax.errors import cli_main
from bigsmall_jax.inference.detectors import DETECTORS
from bigsmall_jax.inference.live import Monitor
from bigsmall_jax.runtime import configure_cpu_runtime


def measure(frames: np.ndarray, fps: float, model: str = DEFAULT_MODEL, window_s: float = 10.0,
            stride_s: float = 1.0, detector: str = "haar") -> dict:
    """Speed figures of `Monitor` on (T, H, W, 3) uint8 frames at `fps` (compiled before timing)."""
    monitor = Monitor(model, window_s=window_s, stride_s=stride_s, fps=fps, detector=detector)
    monitor.warmup()
    latencies, per_frame = [], []
    start, cpu_start = time.perf_counter(), time.process_time()
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        est = monitor.update(frame, i / fps)
        (per_frame if est is None else latencies).append(time.perf_counter() - t0)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    n = len(frames)
    return {"frames": n, "frame_size": list(frames.shape[1:3]), "fps_of_video": fps, "detector": detector,
            "window_s": window_s, "stride_s": stride_s, "estimates": len(latencies),
            "frames_per_s": round(n / wall, 2), "cpu_ms_per_frame": round(1000 * cpu / n, 2),
            "update_ms_median_without_estimate": round(1000 * float(np.median(per_frame)), 2),
            "latency_ms_median": round(1000 * float(np.median(latencies)), 1) if latencies else None,
            "latency_ms_p95": round(1000 * float(np.percentile(latencies, 95)), 1) if latencies else None}


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.benchmark.live", description=__doc__.split("\n\n")[0])
    p.add_argument("video")
    p.add_argument("--checkpoint", default=DEFAULT_MODEL)
    p.add_argument("--window-s", type=float, default=10.0)
    p.add_argument("--stride-s", type=float, default=1.0)
    p.add_argument("--detector", choices=DETECTORS, default="haar")
    args = p.parse_args(argv)
    frames, fps = read_video(args.video)
    configure_cpu_runtime(purpose="infer")
    print(json.dumps(measure(frames, fps, args.checkpoint, args.window_s, args.stride_s, args.detector)))


if __name__ == "__main__":
    main()
