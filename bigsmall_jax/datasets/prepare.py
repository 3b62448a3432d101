"""Build a preprocessed BigSmall dataset (TFDS ArrayRecord) from raw videos or synthetic data.

Usage::

    python -m bigsmall_jax.prepare --dataset synthetic --data-dir ~/bigsmall_data
    python -m bigsmall_jax.prepare --dataset synthetic --data-dir DIR --n-subjects 4 --duration-s 3
    python -m bigsmall_jax.prepare --dataset bp4d_plus --config fold1 --source-dir /data/BP4D+ --data-dir DIR
    python -m bigsmall_jax.prepare --dataset generic --source-dir my_videos/ --data-dir DIR --set tail=pad

A dataset already built with the same settings is reused. Settings other than the named config's make
a config of their own (``<config>-<hash>``), so differently built data never mixes. The command prints
one JSON object: where the data is, clips per split and the bytes per stored frame.

The trainer calls `ensure_dataset`, which builds only what is missing.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence

from bigsmall_jax.datasets import tfds_builders
from bigsmall_jax.errors import UserError, cli_main

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _build_lock(data_dir: str, name: str) -> Iterator[None]:
    """An exclusive lock on ``<data_dir>/.<name>.lock`` so that concurrent callers build only once."""
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, f".{name}.lock")
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_dataset(name: str, data_dir: str | os.PathLike, *, config: str | None = None,
                   source_dir: str | os.PathLike | None = None, progress: bool = True, workers: int | None = None,
                   **overrides):
    """The builder of a dataset, built first if it is not yet in `data_dir`.

    Args:
      name: "synthetic", "bp4d_plus", "ubfc_rppg", "pure", "generic" (or their ``bigsmall_`` TFDS names).
      data_dir: TFDS data directory (the data lands in ``<data_dir>/bigsmall_<name>/<config>/<version>``).
      config: the family's config name (None: its default, e.g. "default" or "fold1").
      source_dir: the raw dataset (real datasets).
      progress: tqdm bar per video while building.
      workers: parallel processes for generating / preprocessing (synthetic); None: automatic, 0: none.
      **overrides: `tfds_builders.BigSmallConfig` fields and, for synthetic, `SyntheticConfig` fields
        (e.g. ``n_subjects=4, duration_s=3, frame_size=64``); None values are ignored.

    Returns:
      The prepared `tfds_builders.BigSmallBuilder`; ``tfds_builders.data_source(builder, "train")`` reads it.

    Raises:
      UserError: unknown dataset / config / setting, missing raw data, or a bad recording. A failed build
        leaves nothing that loads.
    """
    import tensorflow_datasets as tfds

    cls = tfds_builders.builder_class(name)
    cfg = tfds_builders.make_config(name, config, **overrides)
    data_dir = os.fspath(os.path.expanduser(data_dir))
    if cls.needs_source:
        tfds_builders.check_source_dir(cls.name, source_dir)
    # A named config goes by name: TFDS refuses a copy of it (e.g. unpickled in a grain worker) as "custom".
    config_arg = cfg.name if any(cfg is c for c in cls.BUILDER_CONFIGS) else cfg
    with _build_lock(data_dir, f"{cls.name}-{cfg.name}"):
        builder = cls(data_dir=data_dir, config=config_arg, source_dir=source_dir, progress=progress,
                      workers=workers)
        if builder.is_prepared():
            log.info("%s/%s: already built in %s", cls.name, cfg.name, builder.data_dir)
            return builder
        log.info("building %s/%s into %s", cls.name, cfg.name, builder.data_dir)
        tfds.disable_progress_bar()  # ours is per video; TFDS's per-example bars would only add noise
        start = time.perf_counter()
        download_config = None
        if source_dir is not None:
            download_config = tfds.download.DownloadConfig(manual_dir=os.fspath(source_dir))
        stale = sorted(p.name for p in builder.data_path.parent.glob("incomplete.*")) \
            if builder.data_path.parent.exists() else []
        if stale:
            log.warning("%s: %s left by an interrupted build (never read; safe to delete)",
                        builder.data_path.parent, ", ".join(stale))
        # TFDS prints its own messages (stdout is for results); its download folder is not kept.
        with contextlib.redirect_stdout(sys.stderr), \
                tempfile.TemporaryDirectory(prefix=".downloads-", dir=data_dir) as download_dir:
            builder.download_and_prepare(download_dir=download_dir, download_config=download_config)
        seconds = time.perf_counter() - start
        builder = cls(data_dir=data_dir, config=config_arg, source_dir=source_dir, progress=progress)
    stats = tfds_builders.storage_stats(builder)["all"]
    log.info("built %s/%s in %.1f s: %d frames, %.0f bytes/frame on disk (%.1fx less than the %d of float32 "
             "pickles)", cls.name, cfg.name, seconds, stats["frames"], stats["bytes_per_frame"],
             stats["vs_torch"], tfds_builders.TORCH_BYTES_PER_FRAME)
    return builder


def summary(builder) -> dict:
    """A JSON-able description of a built dataset: location, config settings, clips per split, storage."""
    stats = tfds_builders.storage_stats(builder)
    return {
        "dataset": builder.name,
        "config": builder.builder_config.name,
        "version": str(builder.version),
        "data_dir": os.fspath(builder.data_dir),
        "settings": builder.builder_config.settings(),
        "splits": {s: {"clips": int(i.num_examples), "frames": int(stats[s]["frames"]),
                       "bytes_per_frame": round(stats[s]["bytes_per_frame"], 1)}
                   for s, i in builder.info.splits.items()},
        "bytes_per_frame": round(stats["all"]["bytes_per_frame"], 1),
        "torch_bytes_per_frame": tfds_builders.TORCH_BYTES_PER_FRAME,
    }


def _parse_set(items: Sequence[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value  # a plain string, e.g. face_crop=every
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.prepare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic",
                   help=f"one of: {', '.join(tfds_builders.BUILDERS)} (default: synthetic)")
    p.add_argument("--data-dir", required=True, help="TFDS data directory to build into")
    p.add_argument("--source-dir", default=None, help="raw dataset directory (real datasets)")
    p.add_argument("--config", default=None, help="builder config (e.g. fold1..fold3 for bp4d_plus)")
    g = p.add_argument_group("synthetic data (bigsmall_jax.synthetic.SyntheticConfig)")
    g.add_argument("--n-subjects", type=int, default=None)
    g.add_argument("--videos-per-subject", type=int, default=None)
    g.add_argument("--duration-s", type=float, default=None)
    g.add_argument("--fps", type=float, default=None)
    g.add_argument("--frame-size", type=int, default=None)
    g.add_argument("--seed", type=int, default=None)
    g = p.add_argument_group("preprocessing (tfds_builders.BigSmallConfig)")
    g.add_argument("--big-size", type=int, default=None)
    g.add_argument("--small-size", type=int, default=None)
    g.add_argument("--n-segment", type=int, default=None)
    g.add_argument("--face-crop", default=None, help="first | every | median | none | box")
    g.add_argument("--tail", default=None, help="drop | pad")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other BigSmallConfig / SyntheticConfig field (Python literal values)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel processes generating/preprocessing synthetic videos (default: automatic)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {k: getattr(args, k) for k in ("n_subjects", "videos_per_subject", "duration_s", "fps", "frame_size",
                                               "seed", "big_size", "small_size", "n_segment", "face_crop", "tail")}
    overrides.update(_parse_set(args.set))
    builder = ensure_dataset(args.dataset, args.data_dir, config=args.config, source_dir=args.source_dir,
                             progress=not args.no_progress, workers=args.workers, **overrides)
    print(json.dumps(summary(builder), indent=2))


if __name__ == "__main__":
    main()
