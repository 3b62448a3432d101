"""FLOPs and parameter counts of the named model variants (`bigsmall_jax.model.flops`).

    python -m bigsmall_jax.flops [--models bigsmall big_au ...] [--n-segment 3] [--output OUT.json]

FLOPs count a multiply-add as 2. ``flops_per_clip`` is one forward pass over one clip of ``n_segment``
frames, ``flops_per_frame`` that divided by ``n_segment``.
"""

from __future__ import annotations

import argparse

from bigsmall_jax.errors import cli_main
from bigsmall_jax.files import write_json_atomic
from bigsmall_jax.model import NAMED_VARIANTS, ModelConfig
from bigsmall_jax.model.flops import variant_costs


@cli_main
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bigsmall_jax.flops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=None, choices=sorted(NAMED_VARIANTS),
                        help="variants to count (default: all)")
    parser.add_argument("--n-segment", type=int, default=ModelConfig.n_segment)
    parser.add_argument("--output", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    costs = variant_costs(args.models, n_segment=args.n_segment)
    print(f"{'model':<24}{'GFLOPs/clip':>14}{'GFLOPs/frame':>14}{'params':>12}")
    for name, c in costs.items():
        print(f"{name:<24}{c['flops_per_clip'] / 1e9:>14.4f}{c['flops_per_frame'] / 1e9:>14.4f}{c['params']:>12,}")
    if args.output:
        write_json_atomic(args.output, costs, sort_keys=False)


if __name__ == "__main__":
    main()
