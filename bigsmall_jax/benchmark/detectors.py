"""Face detectors compared frame by frame: how often each finds no face, how much its box jitters, and
its time per frame (``python -m bigsmall_jax.benchmark.detectors``).

Sources: synthetic videos (`bigsmall_jax.synthetic`, rendered in memory; the face moves slowly, so jitter
is measured against the generator's own face box where it records one) and the reference loader trees
(`../shared/reference/loaders/*/tree`: BP4D+-like JPEGs in zips, a UBFC-rPPG-like AVI, PURE-like PNGs) when
present. Every frame goes to every detector (no re-use between frames), then through `BoxSmoother` as
live use does.

Figures per detector and source:
  miss_percent: frames with no face found;
  jitter_percent: |change| of the box centre from one frame to the next, in % of the box side (its mean,
    95th percentile and the share of frames where it moved at all), over frames where both are found; raw
    detections, and ``smoothed_jitter_percent`` after `BoxSmoother`;
  median_side_px: the box side (HOG's boxes are tighter than Haar's);
  ms_per_frame: median detection time (on a shared machine, other work included).
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from tqdm import tqdm

from bigsmall_jax.errors import cli_main
from bigsmall_jax.inference.detectors import DETECTORS, BoxSmoother, make_detector

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "loaders"


def synthetic_sources(n_videos: int = 4, seconds: float = 8.0) -> Iterator[tuple[str, np.ndarray]]:
    """(name, (T, H, W, 3) uint8 frames) of `n_videos` synthetic recordings (one per subject)."""
    from bigsmall_jax.synthetic.config import SyntheticConfig
    from bigsmall_jax.synthetic.recordings import generate_recording

    config = SyntheticConfig(n_subjects=n_videos, videos_per_subject=1, duration_s=seconds)
    for s in range(n_videos):
        rec = generate_recording(s, 0, config)
        yield f"synthetic/{rec.name}", rec.frames


def reference_sources(root: Path = REFERENCE, max_frames: int = 200) -> Iterator[tuple[str, np.ndarray]]:
    """(name, frames) of the reference loader trees: BP4D+ zips (one per trial), UBFC AVI, PURE PNGs."""
    for z in sorted(glob.glob(os.fspath(root / "bp4d_raw" / "tree" / "2D+3D" / "*.zip"))):
        with zipfile.ZipFile(z) as archive:
            trials: dict[str, list[str]] = {}
            for name in sorted(archive.namelist()):
                if name.endswith(".jpg"):
                    trials.setdefault(os.path.dirname(name), []).append(name)
            for trial, names in trials.items():
                frames = np.stack([iio.imread(io.BytesIO(archive.read(n))) for n in names[:max_frames]])
                yield f"bp4d/{trial}", frames
    for avi in sorted(glob.glob(os.fspath(root / "ubfc" / "tree" / "*" / "vid.avi"))):
        yield f"ubfc/{Path(avi).parent.name}", np.stack(list(iio.imiter(avi)))[:max_frames]
    for folder in sorted(glob.glob(os.fspath(root / "pure" / "tree" / "*" / "*"))):
        if os.path.isdir(folder):
            pngs = sorted(glob.glob(os.path.join(folder, "*.png")))[:max_frames]
            yield f"pure/{Path(folder).name}", np.stack([iio.imread(p)[..., :3] for p in pngs])


def _moves(boxes: list) -> np.ndarray:
    """|centre change| (largest of x and y) between consecutive found boxes, in % of the box side."""
    moves = []
    for a, b in zip(boxes[:-1], boxes[1:], strict=True):
        if a is not None and b is not None:
            ca = np.array([a[0] + a[2] / 2, a[1] + a[3] / 2])
            cb = np.array([b[0] + b[2] / 2, b[1] + b[3] / 2])
            moves.append(100 * float(np.max(np.abs(cb - ca))) / max(a[2], a[3]))
    return np.array(moves)


def _jitter(boxes: list) -> dict:
    """Mean and 95th percentile of `_moves`, and the share of frames where the box moved at all (%)."""
    m = _moves(boxes)
    if not m.size:
        return {"mean": None, "p95": None, "moved_percent": None}
    return {"mean": round(float(np.mean(m)), 3), "p95": round(float(np.percentile(m, 95)), 3),
            "moved_percent": round(100 * float(np.mean(m > 0)), 1)}


def measure(frames: np.ndarray, detector: str) -> dict:
    """The figures of one detector on one video (see the module docstring), with its boxes."""
    detect = make_detector(detector)
    smoother = BoxSmoother()
    raw, smoothed, times = [], [], []
    for f in frames:
        start = time.perf_counter()
        box = detect(f)
        times.append(time.perf_counter() - start)
        raw.append(box)
        smoothed.append(smoother.update(box) if box is not None else None)
    n = len(frames)
    sides = [max(b[2], b[3]) for b in raw if b is not None]
    return {"frames": n, "miss_percent": round(100 * sum(b is None for b in raw) / n, 2),
            "jitter_percent": _jitter(raw), "smoothed_jitter_percent": _jitter(smoothed),
            "median_side_px": float(np.median(sides)) if sides else None,
            "ms_per_frame": round(1000 * float(np.median(times)), 2)}


def run(detectors: Sequence[str] = DETECTORS, synthetic: int = 4, reference: bool = True,
        max_frames: int = 200) -> dict:
    """{source: {detector: figures}} over the synthetic videos and the reference trees."""
    sources = list(synthetic_sources(synthetic)) if synthetic else []
    if reference and REFERENCE.is_dir():
        sources += list(reference_sources(max_frames=max_frames))
    out: dict = {}
    for name, frames in tqdm(sources, desc="videos", unit="video"):
        out[name] = {d: measure(frames, d) for d in detectors}
    return out


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.benchmark.detectors",
                                description="Face detectors compared: misses, box jitter, time per frame.")
    p.add_argument("--detectors", nargs="+", choices=DETECTORS, default=list(DETECTORS))
    p.add_argument("--synthetic", type=int, default=4, help="synthetic videos (0: none)")
    p.add_argument("--no-reference", action="store_true", help="skip the reference loader trees")
    p.add_argument("--max-frames", type=int, default=200, help="frames per reference video (default: 200)")
    args = p.parse_args(argv)
    print(json.dumps(run(args.detectors, args.synthetic, not args.no_reference, args.max_frames), indent=1))


if __name__ == "__main__":
    main()
