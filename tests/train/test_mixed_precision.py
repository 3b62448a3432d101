"""``model.dtype=bfloat16``: float32 master weights and optimizer state, and a short run that tracks the
float32 losses.

bfloat16 keeps float32's 8-bit exponent, so gradients neither underflow nor overflow where float32's do not:
no loss scaling is needed (float16, with its 5-bit exponent, would need it). What bfloat16 loses is
mantissa (8 bits, a relative rounding of up to 2**-8 = 0.4% per operation); over 8 AdamW steps of a
narrow BigSmall the total loss stays within 1% of float32's (0.1% measured).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bigsmall_jax.model import ModelConfig, build_model
from bigsmall_jax.train import optim
from bigsmall_jax.train.parallel import AXIS, replicate, shard_batch, unreplicate
from bigsmall_jax.train.state import create_train_state
from bigsmall_jax.train.step import make_train_step

STEPS = 8
LOSS_RTOL = 0.01  # bfloat16 against float32, the total loss at every step (0.1% measured)
# A narrow BigSmall on 32-pixel Big and 2-pixel Small frames (the pools take 32 to 2), so the test is quick.
SMALL_MODEL = dict(big_filters=(4, 4, 4, 8, 8, 8), small_filters=(4, 4, 4, 8), dense_units=8,
                   dropout=(0.0, 0.0, 0.0), big_size=32, small_size=2)


def _run(model, batch):
    """(per-step losses (STEPS, 4), final host state) of STEPS AdamW steps on one batch, dropout off."""
    schedule = optax.constant_schedule(1e-3)
    tx = optim.make_optimizer(schedule)
    devices = jax.devices()[:1]
    state = replicate(create_train_state(model, tx, 0), devices)
    step = jax.pmap(make_train_step(model, schedule, seed=0, task_weights={}), axis_name=AXIS, devices=devices)
    sharded = shard_batch(batch, 1, model.config.n_segment)
    losses = []
    for _ in range(STEPS):
        state, m = step(state, sharded)
        losses.append([float(m[k][0]) for k in ("loss", "loss_au", "loss_bvp", "loss_resp")])
    return np.array(losses), unreplicate(state)


def test_bfloat16_run_tracks_float32_with_float32_master_weights():
    model32 = build_model(ModelConfig(**SMALL_MODEL))
    rng = np.random.default_rng(2)
    n = 12  # 4 clips
    # The loader's layout: stored uint8 Big frames (the first of each clip) with their video's statistics.
    batch = {"big": rng.integers(0, 256, (4, 32, 32, 3), np.uint8), "big_mean": np.full(4, 120.0, np.float32),
             "big_std": np.full(4, 60.0, np.float32), "small": rng.normal(size=(n, 2, 2, 3)).astype(np.float32),
             "au": (rng.random((n, 12)) > 0.5).astype(np.float32), "bvp": rng.normal(size=n).astype(np.float32),
             "resp": rng.normal(size=n).astype(np.float32)}
    model16 = build_model(ModelConfig(**SMALL_MODEL, dtype="bfloat16"))
    losses32, _ = _run(model32, batch)
    losses16, state16 = _run(model16, batch)
    # Master weights and AdamW moments stay float32.
    for leaf in jax.tree_util.tree_leaves((state16.params, state16.opt_state)):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32
    # The bfloat16 model does compute in bfloat16 (its losses are not float32's) ...
    assert not np.array_equal(losses16, losses32)
    # ... and tracks float32 within LOSS_RTOL at every step, both learning.
    np.testing.assert_allclose(losses16[:, 0], losses32[:, 0], rtol=LOSS_RTOL)
    assert losses32[-1, 0] < losses32[0, 0] and losses16[-1, 0] < losses16[0, 0]
