"""The data-parallel train step: per-clip dropout, exact global task means, summed or PCGrad gradients.

`make_train_step` returns the per-device step for ``jax.pmap(..., axis_name=AXIS)``: each device holds a
contiguous share of whole clips of the global batch; task losses are exact global means (per-device sums
over the ``lax.psum`` of the valid-label counts), gradients are added over devices the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from bigsmall_jax.datasets.device_batch import device_big, is_packed, unpack_batch
from bigsmall_jax.model import BigSmall
from bigsmall_jax.train import losses as losses_lib
from bigsmall_jax.train import optim as optim_lib
from bigsmall_jax.train.parallel import AXIS
from bigsmall_jax.train.state import TrainState


def _apply_per_clip(model: BigSmall, params, big, small, keys):
    """Training-mode outputs with one dropout key per clip: (N*T, ...) Small frames, (N*T or N, ...) Big
    frames (every frame, or the first of each clip), keys (N,)."""
    t = model.config.n_segment
    n = small.shape[0] // t

    def one(b, s, k):
        return model.apply({"params": params}, b, s, train=True, rngs={"dropout": k})

    out = jax.vmap(one)(big.reshape(n, -1, *big.shape[1:]), small.reshape(n, t, *small.shape[1:]), keys)
    return {k: v.reshape(n * t, *v.shape[2:]) for k, v in out.items()}


def hflip_clips(big: jax.Array, small: jax.Array, flips: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mirrors the frames of the clips where `flips` is true, left to right.

    Args:
      big: (N*T or N, H, W, C) Big frames. small: (N*T, S, S, C) Small frames. flips: (N,) bool, per clip.

    Returns:
      (big, small) of the same shapes. The labels do not change: the 12 AUs are bilateral and the pulse
      and breathing waves do not depend on the side of the face.
    """
    n = flips.shape[0]

    def apply(x):
        f = jnp.repeat(flips, x.shape[0] // n)[:, None, None, None]
        return jnp.where(f, x[:, :, ::-1], x)

    return apply(big), apply(small)


# fold_in indices of the step key's streams other than dropout (whose keys use the clip indices 0, 1, ...).
_PCGRAD_STREAM = 2**31 - 1  # the PCGrad projection order
_FLIP_STREAM = 2**31 - 2  # the clips' mirroring


def _clip_keys(key: jax.Array, clips: jax.Array) -> jax.Array:
    """(N,) keys ``fold_in(key, c)``, one per global clip index c in `clips` (N,)."""
    return jax.vmap(jax.random.fold_in, (None, 0))(key, clips)


def _make_forward(model: BigSmall, per_clip_dropout: bool, axis_name: str, hflip: bool = False) -> Callable:
    """``forward(params, batch, step_key) -> outputs`` in training mode.

    Per-clip dropout draws clip c's key as ``fold_in(step_key, c)`` with c the global clip index (the
    device's first clip is ``axis_index * clips per device``), so outputs do not depend on the device
    count; otherwise one key per device, ``fold_in(step_key, axis_index)``. With `hflip`, clip c is
    mirrored with probability 1/2, drawn from ``fold_in(fold_in(step_key, _FLIP_STREAM), c)``.
    """
    t = model.config.n_segment

    def forward(params, batch, step_key):
        device = jax.lax.axis_index(axis_name)
        small = batch["small"]
        n_clips = small.shape[0] // t
        clips = device * n_clips + jnp.arange(n_clips)
        if hflip:  # on the uint8 frames: a mirrored frame has the same mean and std
            flip_keys = _clip_keys(jax.random.fold_in(step_key, _FLIP_STREAM), clips)
            raw_big, small = hflip_clips(batch["big"], small, jax.vmap(jax.random.bernoulli)(flip_keys))
            batch = {**batch, "big": raw_big}
        big = device_big(batch)  # uint8 frames standardized here, on the device
        if per_clip_dropout:
            return _apply_per_clip(model, params, big, small, _clip_keys(step_key, clips))
        return model.apply({"params": params}, big, small, train=True,
                           rngs={"dropout": jax.random.fold_in(step_key, device)})

    return forward


def _pcgrad_gradients(task_losses: Callable, params, heads: list[str], weights: Mapping[str, jax.Array],
                      key: jax.Array, axis_name: str):
    """(local task losses, PCGrad of the weighted per-task gradients, each added over devices)."""
    local, vjp_fn = jax.vjp(task_losses, params)
    task_grads = []
    for h in heads:
        cotangent = {k: jnp.asarray(weights[h] if k == h else 0.0, jnp.float32) for k in local}
        task_grads.append(jax.lax.psum(vjp_fn(cotangent)[0], axis_name))
    return local, optim_lib.pcgrad(task_grads, key)


def _summed_gradients(task_losses: Callable, params, weights: Mapping[str, jax.Array], axis_name: str):
    """(local task losses, gradient of the weighted total, added over devices)."""
    def total(p):
        per_task = task_losses(p)
        return losses_lib.weighted_total(per_task, weights), per_task

    (_, local), grads = jax.value_and_grad(total, has_aux=True)(params)
    return local, jax.lax.psum(grads, axis_name)


def make_train_step(model: BigSmall, schedule: optax.Schedule, *, seed: int, task_weights: Mapping[str, float],
                    au_pos_weight=None, pcgrad: bool = False, per_clip_dropout: bool = True,
                    task_start_steps: Mapping[str, int] | None = None, hflip: bool = False,
                    nan_at_step: int = -1, axis_name: str = AXIS):
    """The per-device training step, to be wrapped in ``jax.pmap(..., axis_name=axis_name)``.

    Args:
      model: the module; ``model.apply`` runs it.
      schedule: learning rate per step (only logged; the optimizer in the state has its own copy).
      seed: randomness of step s and clip c is ``fold_in(fold_in(PRNGKey(seed), s + 1), c)`` (dropout) and
        ``fold_in(fold_in(fold_in(PRNGKey(seed), s + 1), _FLIP_STREAM), c)`` (mirroring, `hflip`).
      task_weights: {"au", "bvp", "resp": weight} of the total loss.
      au_pos_weight: (n_au,) BCE positive weights, or None.
      pcgrad: combine task gradients with PCGrad (`bigsmall_jax.train.optim.pcgrad`) instead of summing.
      per_clip_dropout: dropout keys per global clip index (device-count invariant) rather than per device.
      task_start_steps: {task: step}: the task's loss has weight 0 before that step (a curriculum; default:
        every task from step 0). Its loss is still computed and logged.
      hflip: mirror each clip left to right with probability 1/2 (`hflip_clips`), per global clip index.
      nan_at_step: fault injection (tests); the loss of that step is multiplied by NaN.
      axis_name: the pmap axis.

    Returns:
      ``step(state, batch) -> (state, metrics)``. ``batch`` holds this device's frames: "big"
      (n*T or n, 144, 144, 3), float32 standardized or uint8 with "big_mean", "big_std" (`device_big`),
      "small" (n*T, 9, 9, 3), labels "au" (n*T, 12), "bvp", "resp" (n*T,), optional masks "au_mask",
      "bvp_mask", "resp_mask", "frame_mask"; or those packed into three arrays
      (`bigsmall_jax.datasets.device_batch.pack_batch`, as the trainer sends them). ``metrics``: global
      "loss" (weighted total, with the weights of this step), "loss_<task>" (unweighted means), "grad_norm",
      "lr", identical on every device.
    """
    base_key = jax.random.PRNGKey(seed)
    pos_weight = None if au_pos_weight is None or len(au_pos_weight) == 0 else jnp.asarray(au_pos_weight, jnp.float32)
    heads = [h for h, _ in model.config.heads]
    base_weights = {h: float(task_weights.get(h, 1.0)) for h in heads}
    starts = {h: int((task_start_steps or {}).get(h, 0)) for h in heads}
    forward = _make_forward(model, per_clip_dropout, axis_name, hflip)

    def step(state: TrainState, batch: Mapping[str, jax.Array]):
        if is_packed(batch):
            batch = unpack_batch(batch, model.config.small_size)
        weights = {h: base_weights[h] * (state.step >= starts[h]) if starts[h] > 0 else base_weights[h]
                   for h in heads}
        step_key = jax.random.fold_in(base_key, state.step + 1)
        nan_factor = jnp.where(state.step == nan_at_step, jnp.nan, 1.0)

        def task_losses(params):
            sums = losses_lib.task_sums(forward(params, batch, step_key), batch, pos_weight)
            # Each device's share of the global mean: its sum over the global count of valid labels.
            return {h: nan_factor * s / jnp.maximum(jax.lax.psum(c, axis_name), 1.0) for h, (s, c) in sums.items()}

        if pcgrad and len(heads) > 1:
            local, grads = _pcgrad_gradients(task_losses, state.params, heads, weights,
                                             jax.random.fold_in(step_key, _PCGRAD_STREAM), axis_name)
        else:
            local, grads = _summed_gradients(task_losses, state.params, weights, axis_name)
        per_task = jax.lax.psum(local, axis_name)
        metrics = {"loss": losses_lib.weighted_total(per_task, weights),
                   **{f"loss_{h}": v for h, v in per_task.items()},
                   "grad_norm": optax.tree.norm(grads),
                   "lr": jnp.asarray(schedule(state.step), jnp.float32)}
        return state.apply_gradients(grads=grads), metrics

    return step
