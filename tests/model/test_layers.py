"""The ops `bigsmall_jax.model.bigsmall` uses for speed (`relu`, `avg_pool`, `Dropout`, `InputConv`), checked
against the plain Flax / JAX ops they replace: values, gradients and parameters."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigsmall_jax.model.layers import Dropout, InputConv, avg_pool, relu


def test_relu_values_and_gradient_match_flax():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 5, 6, 8)), jnp.float32)
    x = x.at[0, 0, 0, :3].set(0.0)  # the kink: both give gradient 0 there
    g = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), jnp.float32)
    np.testing.assert_array_equal(relu(x), nn.relu(x))
    ours = jax.vjp(relu, x)[1](g)[0]
    theirs = jax.vjp(nn.relu, x)[1](g)[0]
    np.testing.assert_array_equal(ours, theirs)
    # Inside jit, under vmap and in bfloat16 too.
    xb = x.astype(jnp.bfloat16)
    np.testing.assert_array_equal(jax.jit(jax.vmap(jax.grad(lambda v: relu(v).sum())))(xb),
                                  jax.vmap(jax.grad(lambda v: nn.relu(v).sum()))(xb))


@pytest.mark.parametrize("channels", [3, 4, 5])
def test_input_conv_is_flax_conv(channels):
    """Same parameters (names, shapes, initial values), outputs and gradients as the plain `nn.Conv`."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 10, 12, channels)), jnp.float32)
    plain = nn.Conv(8, (3, 3), padding=((1, 1), (1, 1)))
    ours = InputConv(8)
    p_plain, p_ours = plain.init(jax.random.key(0), x), ours.init(jax.random.key(0), x)
    assert jax.tree_util.tree_structure(p_plain) == jax.tree_util.tree_structure(p_ours)
    for a, b in zip(jax.tree_util.tree_leaves(p_plain), jax.tree_util.tree_leaves(p_ours), strict=True):
        np.testing.assert_array_equal(a, b)
    p = jax.tree_util.tree_map(lambda v: v + 0.1, p_plain)  # a nonzero bias too
    np.testing.assert_allclose(ours.apply(p, x), plain.apply(p, x), rtol=1e-5, atol=1e-5)
    loss = lambda m: lambda params, v: (m.apply(params, v) ** 2).sum()
    g_ours, g_plain = jax.grad(loss(ours), (0, 1))(p, x), jax.grad(loss(plain), (0, 1))(p, x)
    for a, b in zip(jax.tree_util.tree_leaves(g_ours), jax.tree_util.tree_leaves(g_plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,window", [((2, 8, 8, 3), 2), ((1, 12, 12, 4), 4), ((2, 9, 11, 2), 2)])
def test_avg_pool_matches_flax_values_and_gradient(shape, window):
    x = jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)
    theirs = lambda v: nn.avg_pool(v, (window, window), strides=(window, window))
    np.testing.assert_allclose(avg_pool(x, window), theirs(x), rtol=1e-6, atol=1e-6)
    w = jnp.asarray(np.random.default_rng(1).normal(size=theirs(x).shape), jnp.float32)
    np.testing.assert_allclose(jax.grad(lambda v: (avg_pool(v, window) * w).sum())(x),
                               jax.grad(lambda v: (theirs(v) * w).sum())(x), rtol=1e-6, atol=1e-6)


def _dropout(rate, x, key, deterministic=False):
    return Dropout(rate).apply({}, x, deterministic=deterministic, rngs={"dropout": key})


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_dropout_keeps_the_right_share_and_scales(rate):
    x = jnp.ones((8, 36, 36, 64), jnp.float32)
    y = np.asarray(_dropout(rate, x, jax.random.key(0)))
    keep = 1 - rate
    assert set(np.unique(y)) == {0.0, np.float32(1) / np.float32(keep)}
    kept = y != 0
    n = kept.size
    assert abs(kept.mean() - keep) < 5 * math.sqrt(keep * (1 - keep) / n)  # binomial, 5 sigma
    # Each of the 4 elements a random word decides has the right share, and they are not copies.
    lanes = kept.reshape(-1, 4)
    for lane in range(4):
        assert abs(lanes[:, lane].mean() - keep) < 5 * math.sqrt(keep * (1 - keep) / len(lanes))
    agree = (lanes[:, 0] == lanes[:, 1]).mean()
    assert abs(agree - (keep**2 + (1 - keep) ** 2)) < 0.01
    # Same key, same mask; another key, another mask; evaluation passes through.
    np.testing.assert_array_equal(y, _dropout(rate, x, jax.random.key(0)))
    assert (np.asarray(_dropout(rate, x, jax.random.key(1))) != y).mean() > 0.1
    np.testing.assert_array_equal(_dropout(rate, x, jax.random.key(0), deterministic=True), x)


@pytest.mark.parametrize("rate,channels", [(0.3, 8), (0.5, 6)])
def test_dropout_where_8_bits_do_not_fit(rate, channels):
    """Rates that are not multiples of 1/256 and channel counts not a multiple of 4 (flax's own dropout)."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 32, 32, channels)), jnp.float32)
    y = np.asarray(_dropout(rate, x, jax.random.key(3)))
    keep = 1 - rate
    kept = y != 0
    np.testing.assert_allclose(y[kept], np.asarray(x)[kept] / np.float32(keep), rtol=1e-6)
    assert abs(kept.mean() - keep) < 5 * math.sqrt(keep * (1 - keep) / kept.size)
