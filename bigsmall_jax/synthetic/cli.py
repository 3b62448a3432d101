"""``python -m bigsmall_jax.synthetic --out DIR``: writes a synthetic dataset folder (`dataset.write_dataset`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence

from bigsmall_jax.errors import UserError, cli_main
from bigsmall_jax.synthetic.config import SyntheticConfig
from bigsmall_jax.synthetic.dataset import write_dataset


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    d = SyntheticConfig()
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.synthetic",
                                description="Write synthetic face videos (mp4) with per-frame labels (CSV).")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--n-subjects", type=int, default=d.n_subjects)
    p.add_argument("--videos-per-subject", type=int, default=d.videos_per_subject)
    p.add_argument("--duration", type=float, default=d.duration_s, help="seconds per video")
    p.add_argument("--fps", type=float, default=d.fps)
    p.add_argument("--frame-size", type=int, default=d.frame_size, help="pixels (square frames)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--compression", action="store_true", help="JPEG-compress every frame")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other SyntheticConfig field, e.g. --set noise_std=3 (repeatable)")
    return p.parse_args(argv)


def _field_value(item: str) -> tuple[str, object]:
    """``"noise_std=3"`` -> ``("noise_std", 3.0)``: the value read as the type of the field's default
    (bool: true/false/1/0; tuple: comma-separated floats)."""
    fields = [f.name for f in dataclasses.fields(SyntheticConfig)]
    key, sep, raw = item.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or key not in fields:
        raise UserError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(fields)}")
    default = getattr(SyntheticConfig(), key)
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return key, raw.lower() in ("true", "1")
        if isinstance(default, tuple):
            return key, tuple(float(x) for x in raw.split(","))
        return key, type(default)(raw)
    except ValueError:
        raise UserError(f"--set {item!r}: cannot read {raw!r} as {type(default).__name__}") from None


def _config_from_args(args: argparse.Namespace) -> SyntheticConfig:
    values: dict = dict(n_subjects=args.n_subjects, videos_per_subject=args.videos_per_subject,
                        duration_s=args.duration, fps=args.fps, frame_size=args.frame_size, seed=args.seed,
                        compression=args.compression)
    values.update(_field_value(item) for item in args.set)
    return SyntheticConfig(**values)


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    """Writes every synthetic video + label CSV, ``subjects.csv``, ``splits.csv``, a contact sheet and a
    label plot into ``--out``, then prints a JSON summary."""
    args = _parse(argv)
    summary = write_dataset(_config_from_args(args), args.out)
    print(json.dumps(summary, indent=1))
