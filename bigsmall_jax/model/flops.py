"""FLOPs and parameter counts of the model family, from XLA's cost analysis of the jitted forward pass.

FLOPs count a multiply-add as 2. ``flops_per_clip`` is one forward pass over one clip of ``n_segment``
frames, ``flops_per_frame`` that divided by ``n_segment``. The command line is ``python -m bigsmall_jax.flops``.
"""

from __future__ import annotations

from typing import Any

import jax

from bigsmall_jax.model.bigsmall import BigSmall, build_model, count_params, dummy_inputs
from bigsmall_jax.model.variants import NAMED_VARIANTS, SINGLE_TASK_VARIANTS, named_config


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
    names = list(names or NAMED_VARIANTS)
    out = {name: forward_cost(build_model(named_config(name, **overrides))) for name in names}
    if all(b in out for b in SINGLE_TASK_VARIANTS):
        out["single_task_sum"] = {k: sum(out[b][k] for b in SINGLE_TASK_VARIANTS)
                                  for k in out[SINGLE_TASK_VARIANTS[0]]}
    return out
