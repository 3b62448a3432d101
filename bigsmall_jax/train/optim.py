"""Optimizer, learning-rate schedules and PCGrad for training BigSmall.

The paper trains with AdamW (lr 1e-3, weight decay 0, PyTorch's betas and eps). optax's ``adamw`` with
``eps_root=0`` puts eps where PyTorch does (``m_hat / (sqrt(v_hat) + eps)``), so the same numbers give the
same updates.

PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020): each task's gradient g_i is
projected, in a random order of the other tasks j, onto the normal plane of every g_j it conflicts with
(g_i . g_j < 0): ``g_i <- g_i - (g_i . g_j) / |g_j|^2 g_j``; the update uses the sum of the projected
gradients (the plain multi-task gradient when no pair conflicts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from bigsmall_jax.errors import UserError

SCHEDULES = ("constant", "warmup_cosine", "one_cycle")


def make_schedule(name: str, lr: float, total_steps: int, warmup_steps: int = 0,
                  end_lr_factor: float = 0.0, pct_start: float = 0.3, div_factor: float = 25.0,
                  final_div_factor: float = 1e4) -> optax.Schedule:
    """A learning-rate schedule (step -> lr).

    Args:
      name: ``"constant"`` (lr throughout), ``"warmup_cosine"`` (linear 0 -> lr over ``warmup_steps``, then
        cosine to ``lr * end_lr_factor`` at ``total_steps``) or ``"one_cycle"`` (PyTorch's OneCycleLR shape:
        cosine from lr/div_factor up to lr over ``pct_start`` of the steps, then down to
        lr/(div_factor*final_div_factor)).
      lr: peak learning rate.
      total_steps: optimizer steps of the whole run.
    """
    total_steps = max(int(total_steps), 1)
    if name == "constant":
        return optax.constant_schedule(lr)
    if name == "warmup_cosine":
        warmup = min(int(warmup_steps), total_steps - 1)
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, total_steps, end_value=lr * end_lr_factor)
    if name == "one_cycle":
        return optax.cosine_onecycle_schedule(total_steps, lr, pct_start, div_factor, final_div_factor)
    raise UserError(f"unknown learning-rate schedule {name!r}; valid: {', '.join(SCHEDULES)}")


def make_optimizer(schedule: optax.Schedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                   weight_decay: float = 0.0, clip_norm: float = 0.0) -> optax.GradientTransformation:
    """AdamW on ``schedule``, after global-norm gradient clipping when ``clip_norm > 0``."""
    adamw = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    if clip_norm and clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(clip_norm), adamw)
    return adamw


def optimizer_from_config(optim: Mapping, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(optimizer, schedule) from the ``optim`` section of a training config (see ``configs/common.py``)."""
    schedule = make_schedule(optim["schedule"], float(optim["lr"]), total_steps,
                             warmup_steps=int(optim.get("warmup_steps", 0)),
                             end_lr_factor=float(optim.get("end_lr_factor", 0.0)))
    tx = make_optimizer(schedule, float(optim["b1"]), float(optim["b2"]), float(optim["eps"]),
                        float(optim["weight_decay"]), float(optim.get("clip_norm", 0.0)))
    return tx, schedule


def pcgrad(task_grads: Sequence, key: jax.Array):
    """Projects conflicting task gradients and sums them (PCGrad).

    Args:
      task_grads: one gradient pytree per task, all of the same structure.
      key: PRNG key for the random order in which each gradient meets the others. Pass the same key on
        every device so that all replicas project identically.
    Returns:
      A gradient pytree: the sum over tasks of the projected gradients.
    """
    flats = [ravel_pytree(g)[0] for g in task_grads]
    unravel = ravel_pytree(task_grads[0])[1]
    g = jnp.stack(flats)  # (K, P)
    k = g.shape[0]
    if k == 1:
        return task_grads[0]
    order = jax.random.permutation(key, k)
    sq_norms = jnp.sum(g * g, axis=1)
    projected = []
    for i in range(k):
        gi = g[i]
        for n in range(k):
            j = order[n]
            gj = g[j]
            dot = jnp.dot(gi, gj)
            conflict = (dot < 0) & (j != i) & (sq_norms[j] > 0)
            gi = jnp.where(conflict, gi - dot / jnp.where(sq_norms[j] > 0, sq_norms[j], 1.0) * gj, gi)
        projected.append(gi)
    return unravel(jnp.sum(jnp.stack(projected), axis=0))


__all__ = ["SCHEDULES", "make_optimizer", "make_schedule", "optimizer_from_config", "pcgrad"]
