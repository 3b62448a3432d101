"""Live heart rate, breathing rate, signal quality and active AUs from a camera, a video file or a stream.

Usage::

    python -m bigsmall_jax.live SOURCE [--checkpoint NAME|DIR] [--window-s 10] [--stride-s 1]
        [--detector haar|hog] [--display] [--json] [--max-seconds S]

SOURCE is a camera index (``0``), a video file or a stream URL, anything OpenCV's ``VideoCapture`` opens.
Every stride it prints one line: HR and RR with their SNR (and ``LOW QUALITY`` when the number should not
be trusted), the active AUs and the latency from the frame's arrival to its estimate
(`bigsmall_jax.inference.live.Monitor`, which equals ``infer`` on the same window). At the end it prints
a JSON summary: frames, the frames per second it kept up with (all work included: decoding, face
detection, the model), the process's CPU time per frame (all threads), and the latency's median and 95th
percentile. ``--display`` shows the frame with
the face box and the numbers (needs a display and an OpenCV build with GUI support).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from collections.abc import Sequence

import numpy as np

from bigsmall_jax.checkpoints.published import DEFAULT_MODEL
from bigsmall_jax.errors import UserError, cli_main
from bigsmall_jax.inference.detectors import DETECTORS
from bigsmall_jax.inference.live import LiveEstimate, Monitor
from bigsmall_jax.runtime import configure_cpu_runtime

log = logging.getLogger(__name__)
WINDOW_NAME = "bigsmall-jax live"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.live", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="camera index (0, 1, ...), video file or stream URL")
    p.add_argument("--checkpoint", default=DEFAULT_MODEL, help=f"model (default: the shipped {DEFAULT_MODEL!r})")
    p.add_argument("--window-s", type=float, default=10.0, help="rolling window in seconds (default: 10)")
    p.add_argument("--stride-s", type=float, default=1.0, help="seconds between estimates (default: 1)")
    p.add_argument("--detector", choices=DETECTORS, default="haar", help="face detector (default: haar, the paper's)")
    p.add_argument("--redetect-s", type=float, default=1.0, help="re-detect the face this often, smoothed (default: 1)")
    p.add_argument("--no-face-crop", action="store_true", help="the frames are already face crops")
    p.add_argument("--fps", type=float, default=None, help="frame rate (default: the source's, else timestamps)")
    p.add_argument("--display", action="store_true", help="show the frame, face box and numbers")
    p.add_argument("--json", action="store_true", help="print each estimate as a JSON line")
    p.add_argument("--max-seconds", type=float, default=None, help="stop after this much video time")
    return p.parse_args(argv)


def open_source(source: str):
    """An opened `cv2.VideoCapture` and whether it is a file (frames timed by index) rather than live."""
    import cv2

    is_camera = source.isdigit()
    cap = cv2.VideoCapture(int(source) if is_camera else source)
    if not cap.isOpened():
        what = "camera" if is_camera else "file or stream" if "://" in source else "video file"
        exists = "" if is_camera or "://" in source or os.path.exists(source) else " (no such file)"
        raise UserError(f"{source}: OpenCV cannot open this {what}{exists}")
    return cap, not is_camera and "://" not in source


def _check_display() -> None:
    import cv2

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and os.name != "nt":
        raise UserError("--display: no display here (DISPLAY is not set)")
    try:
        cv2.namedWindow(WINDOW_NAME)
    except cv2.error:
        raise UserError("--display: this OpenCV build has no GUI support (opencv-python-headless); "
                        "install opencv-python to show frames") from None


def _show(frame_rgb: np.ndarray, box, last: LiveEstimate | None) -> bool:
    """Draws the frame with its box and the last numbers; False when the user pressed q or Esc."""
    import cv2

    img = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    if box is not None:
        x, y, w, h = box
        cv2.rectangle(img, (x, y), (x + w, y + h), (0, 255, 0), 2)
    if last is not None:
        for i, text in enumerate(last.line().split(" | ")[1:]):
            cv2.putText(img, text, (8, 20 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    cv2.imshow(WINDOW_NAME, img)
    return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    import cv2

    args = parse_args(argv)
    for flag in ("window_s", "stride_s", "redetect_s", "fps", "max_seconds"):
        value = getattr(args, flag)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"--{flag.replace('_', '-')} must be a positive number, got {value:g}")
    configure_cpu_runtime(purpose="infer")
    if args.display:
        _check_display()
    cap, is_file = open_source(args.source)
    fps = args.fps or (cap.get(cv2.CAP_PROP_FPS) if is_file else None) or None
    monitor = Monitor(args.checkpoint, window_s=args.window_s, stride_s=args.stride_s, fps=fps,
                      detector=None if args.no_face_crop else args.detector, redetect_s=args.redetect_s)
    if monitor.fps is not None:
        monitor.warmup()
    log.info("%s: %s, window %g s every %g s, detector %s", args.source, args.checkpoint, args.window_s,
             args.stride_s, "none" if args.no_face_crop else args.detector)
    latencies, n, last = [], 0, None
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            t = n / fps if is_file and fps else time.perf_counter() - start
            if args.max_seconds is not None and t > args.max_seconds:
                break
            est = monitor.update(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t)
            n += 1
            if est is not None:
                last = est
                latencies.append(est.latency_s)
                print(json.dumps(est.to_dict()) if args.json else est.line(), flush=True)
            if args.display and not _show(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                                          monitor.tracker.box if monitor.tracker else None, last):
                break
    finally:
        cap.release()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if n == 0:
        raise UserError(f"{args.source}: no frame could be read")
    if not latencies:
        log.warning("%s: no estimate: %d frames%s are fewer than one %g s window", args.source, n,
                    "" if monitor.tracker is None or monitor.tracker.box is not None else " (and no face found)",
                    args.window_s)
    lat = np.array(latencies) * 1000
    print(json.dumps({"frames": n, "estimates": len(latencies), "wall_s": round(wall, 3),
                      "frames_per_s": round(n / wall, 2) if wall > 0 else None,
                      "cpu_ms_per_frame": round(1000 * cpu / n, 2),
                      "latency_ms_median": round(float(np.median(lat)), 2) if lat.size else None,
                      "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat.size else None,
                      "face_detection_misses": monitor.tracker.misses if monitor.tracker else 0}))


if __name__ == "__main__":
    main()
