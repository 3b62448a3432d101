"""FLOPs and parameter counts of the model family, from XLA's cost analysis of the jitted forward pass.

    python -m bigsmall_jax.flops [--models bigsmall big_au ...] [--n-segment 3] [--output OUT.json]

FLOPs count a multiply-add as 2. ``flops_per_clip`` is one forward pass over one clip of ``n_segment``
frames, ``flops_per_frame`` that divided by ``n_segment``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import jax

from bigsmall_jax.errors import cli_main
from bigsmall_jax.model.bigsmall import NAMED_VARIANTS, BigSmall, ModelConfig, build_model, count_params, dummy_inputs


def lowered_flops(lowered) -> float:
    """FLOPs XLA's cost analysis attributes to a lowered computation (``jax.jit(f).lower(...)``, or a pmapped
    one), before backend fusion."""
    analysis = lowered.cost_analysis()
    if isinstance(analysis, list | tuple):  # older JAX returned one dict per computation
        analysis = analysis[0]
    return float(analysis["flops"])


def xla_flops(fn, *args) -> float:
    """FLOPs XLA's cost analysis attributes to ``jax.jit(fn)(*args)`` (before backend fusion)."""
    return lowered_flops(jax.jit(fn).lower(*args))


def forward_cost(model: BigSmall, variables=None, n_clips: int = 1) -> dict[str, Any]:
    """FLOPs of one eval-mode forward pass, per clip and per frame, and the parameter count."""
    config = model.config
    if variables is None:
        variables = jax.eval_shape(lambda: model.init(jax.random.key(0), *dummy_inputs(config), train=False))
    big, small = dummy_inputs(config, n_clips)
    flops = xla_flops(lambda v, b, s: model.apply(v, b, s, train=False), variables, big, small)
    return {
        "flops_per_clip": flops / n_clips,
        "flops_per_frame": flops / (n_clips * config.n_segment),
        "params": count_params(variables["params"]),
    }


def variant_costs(names=None, **overrides) -> dict[str, dict[str, Any]]:
    """`forward_cost` of each named variant, plus the sum of the three single-task baselines."""
    from bigsmall_jax.model.bigsmall import named_config

    names = list(names or NAMED_VARIANTS)
    out = {name: forward_cost(build_model(named_config(name, **overrides))) for name in names}
    baselines = ("big_au", "small_bvp", "small_resp")
    if all(b in out for b in baselines):
        out["single_task_sum"] = {k: sum(out[b][k] for b in baselines) for k in out["big_au"]}
    return out


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
        with open(args.output, "w") as f:
            json.dump(costs, f, indent=2)


if __name__ == "__main__":
    main()
