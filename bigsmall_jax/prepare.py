"""Build a preprocessed BigSmall dataset (TFDS ArrayRecord) from raw videos or synthetic data.

Usage::

    python -m bigsmall_jax.prepare --dataset synthetic --data-dir ~/bigsmall_data
    python -m bigsmall_jax.prepare --dataset synthetic --data-dir DIR --n-subjects 4 --duration-s 3
    python -m bigsmall_jax.prepare --dataset bp4d_plus --config fold1 --source-dir /data/BP4D+ --data-dir DIR
    python -m bigsmall_jax.prepare --dataset bp4d_plus --config fold1 --source-dir DIR --data-dir DIR --workers 4 \
        --set au_codes=masked
    python -m bigsmall_jax.prepare --dataset generic --source-dir my_videos/ --data-dir DIR --set tail=pad

A dataset already built with the same settings is reused. Settings other than the named config's make
a config of their own (``<config>-<hash>``), so differently built data never mixes. The command prints
one JSON object: where the data is, clips per split and the bytes per stored frame.

The building itself is `bigsmall_jax.datasets.prepare.ensure_dataset`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from bigsmall_jax.cli import parse_key_values
from bigsmall_jax.datasets.prepare import ensure_dataset, summary
from bigsmall_jax.datasets.registry import DATASETS
from bigsmall_jax.errors import cli_main

# Flags that set a `BigSmallConfig` / `SyntheticConfig` field of the same name.
_SETTING_FLAGS = ("n_subjects", "videos_per_subject", "duration_s", "fps", "frame_size", "seed", "big_size",
                  "small_size", "n_segment", "face_crop", "tail")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.prepare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic", help=f"one of: {', '.join(DATASETS)} (default: synthetic)")
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
    g.add_argument("--face-crop", default=None, help="first | every | median | none | box | toolbox")
    g.add_argument("--tail", default=None, help="drop | pad")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other BigSmallConfig / SyntheticConfig field or reader setting (e.g. BP4D+ "
                        "au_codes=masked, PURE ppg_grid=timestamps; Python literal values)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel processes generating / reading and preprocessing videos (default: automatic)")
    p.add_argument("--strict", action="store_true",
                   help="a trial that cannot be read is an error (default: skipped with a warning)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {k: getattr(args, k) for k in _SETTING_FLAGS}
    overrides.update(parse_key_values(args.set, "--set"))
    builder = ensure_dataset(args.dataset, args.data_dir, config=args.config, source_dir=args.source_dir,
                             progress=not args.no_progress, workers=args.workers, strict=args.strict, **overrides)
    print(json.dumps(summary(builder), indent=2))
    if builder.skipped:
        print(f"skipped {len(builder.skipped)} trial(s) that could not be read (warnings above; --strict makes "
              "this an error)", file=sys.stderr)


if __name__ == "__main__":
    main()
