"""Optimizer pieces: PCGrad (alone and in the step), schedules, gradient clipping."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from train_helpers import flat_params, narrow_model_and_batch, pcgrad_loop

from bigsmall_jax.errors import UserError
from bigsmall_jax.train import losses, optim
from bigsmall_jax.train.parallel import AXIS, replicate, shard_batch, unreplicate
from bigsmall_jax.train.state import create_train_state
from bigsmall_jax.train.step import make_train_step


def test_pcgrad_closed_form_two_tasks():
    g1, g2 = np.array([1.0, 0.0]), np.array([-1.0, 1.0])
    # g1 . g2 = -1: g1 -> g1 + g2/2 = (0.5, 0.5); g2 -> g2 + g1 = (0, 1).
    got = optim.pcgrad([{"w": g1}, {"w": g2}], jax.random.PRNGKey(0))
    np.testing.assert_allclose(np.asarray(got["w"]), [0.5, 1.5], atol=1e-6)
    # No conflict: the plain sum.
    got = optim.pcgrad([{"w": g1}, {"w": np.array([1.0, 2.0])}], jax.random.PRNGKey(0))
    np.testing.assert_allclose(np.asarray(got["w"]), [2.0, 2.0], atol=1e-6)


def test_pcgrad_three_tasks_matches_loop():
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=7).astype(np.float32) for _ in range(3)]
    key = jax.random.PRNGKey(5)
    order = [int(i) for i in jax.random.permutation(key, 3)]
    trees = [{"a": g[:3], "b": {"c": g[3:]}} for g in grads]
    got = optim.pcgrad(trees, key)
    flat = np.concatenate([np.asarray(got["a"]), np.asarray(got["b"]["c"])])
    np.testing.assert_allclose(flat, pcgrad_loop(grads, order), rtol=1e-5, atol=1e-6)
    # The draws conflict somewhere, so the projection changed something.
    assert not np.allclose(flat, np.sum(grads, axis=0), atol=1e-3)


def test_schedules():
    const = optim.make_schedule("constant", 1e-3, 100)
    assert float(const(0)) == pytest.approx(1e-3) and float(const(99)) == pytest.approx(1e-3)
    wc = optim.make_schedule("warmup_cosine", 1e-3, 100, warmup_steps=10, end_lr_factor=0.1)
    assert float(wc(0)) == pytest.approx(0.0)
    assert float(wc(5)) == pytest.approx(0.5e-3, rel=1e-5)
    assert float(wc(10)) == pytest.approx(1e-3, rel=1e-5)
    assert float(wc(55)) == pytest.approx(1e-4 + 0.9e-3 * 0.5, rel=1e-4)  # cosine half-way
    assert float(wc(100)) == pytest.approx(1e-4, rel=1e-4)
    oc = optim.make_schedule("one_cycle", 1e-3, 100)
    assert float(oc(0)) == pytest.approx(1e-3 / 25, rel=1e-4)
    assert float(oc(30)) == pytest.approx(1e-3, rel=1e-4)
    assert float(oc(100)) == pytest.approx(1e-3 / 25 / 1e4, rel=1e-3)
    with pytest.raises(UserError, match="unknown learning-rate schedule"):
        optim.make_schedule("linear", 1e-3, 10)


def test_clipping_happens_before_adamw():
    """Two AdamW steps, a huge then a small gradient: clipping the first to norm 1 changes the second update
    exactly as clipping by hand does."""
    grads = [{"w": np.array([30.0, 40.0, 0.0], np.float32)}, {"w": np.array([0.3, -0.1, 0.2], np.float32)}]

    def run(tx, clip_by_hand=False):
        params = {"w": np.zeros(3, np.float32)}
        state = tx.init(params)
        for g in grads:
            if clip_by_hand:
                norm = float(np.linalg.norm(g["w"]))
                g = {"w": g["w"] * min(1.0, 1.0 / norm)}
            updates, state = tx.update(g, state, params)
            params = optax.apply_updates(params, updates)
        return np.asarray(params["w"])

    schedule = optax.constant_schedule(0.1)
    clipped = run(optim.make_optimizer(schedule, clip_norm=1.0))
    np.testing.assert_allclose(clipped, run(optim.make_optimizer(schedule), clip_by_hand=True), rtol=1e-6)
    assert not np.allclose(clipped, run(optim.make_optimizer(schedule)), rtol=1e-3)


def test_pcgrad_step_applies_the_projected_task_gradients():
    """With SGD(lr=1), the step's parameter change is minus PCGrad of the three task gradients, each computed
    on its own with jax.grad."""
    model, batch = narrow_model_and_batch(6, seed=0)
    weights = {"au": 1.0, "bvp": 3.0, "resp": 0.5}
    state0 = create_train_state(model, optax.sgd(1.0), 0)
    step = jax.pmap(make_train_step(model, optax.constant_schedule(1.0), seed=7, task_weights=weights,
                                    pcgrad=True), axis_name=AXIS, devices=jax.devices()[:1])
    state1, _ = step(replicate(state0, jax.devices()[:1]), shard_batch(batch, 1, 3))
    delta = flat_params(unreplicate(state1).params) - flat_params(state0.params)

    def task_loss(params, task):
        out = model.apply({"params": params}, batch["big"], batch["small"], train=True)
        s, c = losses.task_sums(out, batch)[task]
        return weights[task] * s / c

    grads = [jax.grad(task_loss)(state0.params, t) for t in ("au", "bvp", "resp")]
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(7), 1), 2**31 - 1)
    order = [int(i) for i in jax.random.permutation(key, 3)]
    want = pcgrad_loop([flat_params(g) for g in grads], order)
    np.testing.assert_allclose(-delta, want, rtol=1e-4, atol=1e-6)
    assert not np.allclose(want, sum(flat_params(g) for g in grads), atol=1e-4)  # something was projected
