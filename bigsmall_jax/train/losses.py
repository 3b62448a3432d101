"""The multi-task loss of BigSmall: weighted BCE for AUs plus MSE for pulse and respiration.

Every task loss is a mean over its *valid* label elements: NaN labels (missing AUs, a dataset without
respiration, ...) and frames outside the video (``frame_mask`` False) are left out. To keep the mean
exact when a batch is split over devices, each loss is computed as a (sum, count) pair; the caller adds
the pairs over devices (``lax.psum``) before dividing (see `bigsmall_jax.train.step`).

With no NaNs, the AU loss is PyTorch's ``BCEWithLogitsLoss(pos_weight=p)``: the mean over elements of
``-[p * y * log(sigmoid(x)) + (1 - y) * log(1 - sigmoid(x))]``; the pulse and respiration losses are
``MSELoss`` (mean of squared errors).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

TASKS: tuple[str, ...] = ("au", "bvp", "resp")


def bce_with_logits_elementwise(logits: jax.Array, labels: jax.Array, pos_weight: jax.Array | None = None) -> jax.Array:
    """Elementwise ``-[p*y*log s(x) + (1-y)*log(1-s(x))]``, computed stably.

    Uses log s(x) = -softplus(-x) and log(1 - s(x)) = -x - softplus(-x), so the loss is
    ``(1 - y) * x + (1 + (p - 1) * y) * softplus(-x)``.

    Args:
      logits: (..., K) logits x.
      labels: (..., K) targets y in [0, 1] (must be finite; mask NaNs before).
      pos_weight: (K,) weight p of the positive term per class, or None for 1.
    Returns:
      (..., K) float32 losses.
    """
    x = logits.astype(jnp.float32)
    y = labels.astype(jnp.float32)
    p = 1.0 if pos_weight is None else jnp.asarray(pos_weight, jnp.float32)
    return (1.0 - y) * x + (1.0 + (p - 1.0) * y) * jax.nn.softplus(-x)


def _valid(labels: jax.Array, frame_mask: jax.Array | None, mask: jax.Array | None = None) -> jax.Array:
    """Boolean mask of finite labels on valid frames (and where ``mask`` is nonzero).

    ``labels`` is (N, ...) with one row per frame, ``frame_mask`` (N,), ``mask`` the shape of ``labels``.
    """
    valid = jnp.isfinite(labels)
    if frame_mask is not None:
        valid = valid & (frame_mask.reshape((-1,) + (1,) * (labels.ndim - 1)) > 0)
    if mask is not None:
        valid = valid & (mask.reshape(labels.shape) > 0)
    return valid


def masked_bce_sum(logits: jax.Array, labels: jax.Array, pos_weight=None, frame_mask: jax.Array | None = None,
                   mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(sum of BCE over valid elements, number of valid elements) for (N, K) logits and labels.

    Valid: the label is finite, its frame is real (``frame_mask`` (N,) nonzero, if given) and ``mask``
    ((N, K), if given) is nonzero.
    """
    labels = labels.reshape(logits.shape)
    valid = _valid(labels, frame_mask, mask)
    loss = bce_with_logits_elementwise(logits, jnp.where(valid, labels, 0.0), pos_weight)
    return jnp.sum(jnp.where(valid, loss, 0.0)), jnp.sum(valid).astype(jnp.float32)


def masked_mse_sum(pred: jax.Array, labels: jax.Array, frame_mask: jax.Array | None = None,
                   mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(sum of squared errors over valid elements, number of valid elements); pred (N, 1) or (N,),
    labels and ``mask`` (N,) or (N, 1); validity as in `masked_bce_sum`."""
    pred = pred.reshape(-1).astype(jnp.float32)
    labels = labels.reshape(-1).astype(jnp.float32)
    valid = _valid(labels, frame_mask, None if mask is None else mask.reshape(-1))
    err = jnp.where(valid, pred - jnp.where(valid, labels, 0.0), 0.0)
    return jnp.sum(err * err), jnp.sum(valid).astype(jnp.float32)


def task_sums(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array],
              au_pos_weight=None) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Per-task (loss sum, valid count) for the heads the model has.

    Args:
      outputs: model outputs, ``"au"`` (N, K) logits, ``"bvp"``/``"resp"`` (N, 1); absent heads skipped.
      batch: labels, ``"au"`` (N, K) in {0, 1} or NaN, ``"bvp"``/``"resp"`` (N,) or NaN; optional
        ``"frame_mask"`` (N,) and per-task masks ``"au_mask"`` (N, K), ``"bvp_mask"``, ``"resp_mask"`` (N,)
        (nonzero = use the label; `bigsmall_jax.datasets.input_pipeline` batches have them).
      au_pos_weight: (K,) positive-class weights of the AU BCE, or None.
    Returns:
      {task: (sum, count)} float32 scalars.
    """
    mask = batch.get("frame_mask")
    out = {}
    for task in TASKS:
        if task not in outputs:
            continue
        task_mask = batch.get(f"{task}_mask")
        if task == "au":
            out[task] = masked_bce_sum(outputs[task], batch[task], au_pos_weight, mask, task_mask)
        else:
            out[task] = masked_mse_sum(outputs[task], batch[task], mask, task_mask)
    return out


def weighted_total(task_losses: Mapping[str, jax.Array], weights: Mapping[str, float]) -> jax.Array:
    """Sum of ``weights[task] * loss`` over the tasks present (a missing weight counts as 1; weights may be
    traced values, e.g. a curriculum's per-step weights)."""
    return sum(weights.get(t, 1.0) * v for t, v in task_losses.items())


__all__ = ["TASKS", "bce_with_logits_elementwise", "masked_bce_sum", "masked_mse_sum", "task_sums",
           "weighted_total"]
