"""The BigSmall modules: temporal shifts, any segment length, Big downsampling, fusion, dtypes, dropout and
input checks."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigsmall_jax.model import ModelConfig, build_model, dummy_inputs, init_variables
from bigsmall_jax.model.layers import temporal_shift

# ---------------------------------------------------------------- temporal shift


def shift_reference(x: np.ndarray, n_segment: int, kind: str) -> np.ndarray:
    """Plain-loop temporal shift, written from the definition (frame by frame, channel by channel)."""
    nt, h, w, c = x.shape
    fold = c // 3
    out = np.zeros_like(x) if kind != "none" else x.copy()
    if kind == "none":
        return out
    for clip in range(nt // n_segment):
        for t in range(n_segment):
            frame = clip * n_segment + t
            for ch in range(c):
                if ch < fold:  # takes the next frame's value (shift back in time)
                    src = t + 1
                elif ch < 2 * fold:  # takes the previous frame's value
                    src = t - 1
                else:
                    src = t
                if 0 <= src < n_segment:
                    out[frame, :, :, ch] = x[clip * n_segment + src, :, :, ch]
                elif kind == "wrap":
                    out[frame, :, :, ch] = x[clip * n_segment + src % n_segment, :, :, ch]
    return out


@pytest.mark.parametrize("kind", ["wrap", "zero", "none"])
@pytest.mark.parametrize("n_segment,channels", [(1, 6), (2, 5), (3, 3), (3, 7), (4, 32), (5, 4)])
def test_temporal_shift_matches_plain_loop(kind, n_segment, channels):
    rng = np.random.default_rng(n_segment * 100 + channels)
    x = rng.normal(size=(2 * n_segment, 2, 3, channels)).astype(np.float32) + 1.0  # no zeros in x
    got = np.asarray(temporal_shift(jnp.asarray(x), n_segment, kind))
    np.testing.assert_array_equal(got, shift_reference(x, n_segment, kind))


@pytest.mark.parametrize("n_segment", [2, 3, 4])
def test_wrapping_shift_zero_fills_nothing(n_segment):
    x = np.random.default_rng(0).uniform(1, 2, size=(3 * n_segment, 4, 4, 9)).astype(np.float32)
    wrapped = np.asarray(temporal_shift(jnp.asarray(x), n_segment, "wrap"))
    zeroed = np.asarray(temporal_shift(jnp.asarray(x), n_segment, "zero"))
    assert (wrapped != 0).all()  # every value comes from the input
    assert (zeroed == 0).any()
    # Within each clip, every channel is a permutation of its frames: per-channel sums are kept.
    clips = lambda a: a.reshape(3, n_segment, 4, 4, 9).sum(axis=1)  # noqa: E731
    np.testing.assert_allclose(clips(wrapped), clips(x), rtol=1e-6)


# ---------------------------------------------------------------- variants, segments, dtypes, dropout


@pytest.mark.parametrize("n_segment", [1, 3, 4])
def test_any_segment_length_runs(n_segment):
    model = build_model(n_segment=n_segment, big_filters=(4, 4, 4, 8, 8, 8), small_filters=(4, 4, 4, 8),
                        dense_units=8)
    variables = init_variables(model, jax.random.key(0))
    big, small = dummy_inputs(model.config, n_clips=2)
    out = model.apply(variables, big + 1.0, small + 0.5)
    assert {k: v.shape for k, v in out.items()} == {"au": (2 * n_segment, 12), "bvp": (2 * n_segment, 1),
                                                   "resp": (2 * n_segment, 1)}


def test_big_branch_sees_only_the_first_frame_of_each_segment():
    model = build_model(n_segment=3)
    variables = init_variables(model, jax.random.key(1))
    rng = np.random.default_rng(0)
    big = rng.normal(size=(6, 144, 144, 3)).astype(np.float32)
    small = rng.normal(size=(6, 9, 9, 3)).astype(np.float32)
    base = model.apply(variables, big, small)
    changed = big.copy()
    changed[[1, 2, 4, 5]] = rng.normal(size=(4, 144, 144, 3))  # not the first frames
    same = model.apply(variables, changed, small)
    np.testing.assert_allclose(np.asarray(same["au"]), np.asarray(base["au"]), atol=1e-6)
    changed[3] += 1.0  # first frame of clip 2 changes clip 2's three outputs only
    diff = np.abs(np.asarray(model.apply(variables, changed, small)["au"]) - np.asarray(base["au"])).max(axis=1)
    assert (diff[:3] < 1e-6).all() and (diff[3:] > 1e-6).all()


def test_concat_fusion_and_bfloat16_compute():
    config = ModelConfig(fusion="concat")
    model = build_model(config)
    variables = init_variables(model, jax.random.key(0))
    assert variables["params"]["au"]["fc1"]["kernel"].shape == (9 * 9 * 128, 128)
    big, small = (np.random.default_rng(1).normal(size=s).astype(np.float32)
                  for s in ((3, 144, 144, 3), (3, 9, 9, 3)))
    out32 = model.apply(variables, big, small)
    bf16 = build_model(dataclasses.replace(config, dtype="bfloat16"))
    out16 = bf16.apply(variables, big, small)
    assert all(v.dtype == jnp.float32 for v in out16.values())
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(
        init_variables(bf16, jax.random.key(0))))
    np.testing.assert_allclose(np.asarray(out16["au"]), np.asarray(out32["au"]), atol=0.05)


def test_dropout_only_when_training():
    model = build_model()
    variables = init_variables(model, jax.random.key(0))
    big, small = (np.random.default_rng(2).normal(size=s).astype(np.float32)
                  for s in ((3, 144, 144, 3), (3, 9, 9, 3)))
    eval1 = model.apply(variables, big, small, train=False)
    eval2 = model.apply(variables, big, small, train=False)
    np.testing.assert_array_equal(np.asarray(eval1["au"]), np.asarray(eval2["au"]))
    train_a = model.apply(variables, big, small, train=True, rngs={"dropout": jax.random.key(1)})
    train_b = model.apply(variables, big, small, train=True, rngs={"dropout": jax.random.key(2)})
    assert np.abs(np.asarray(train_a["au"]) - np.asarray(train_b["au"])).max() > 1e-4
    # The Small pathway has no dropout: train and eval agree.
    small_model = build_model(variant="small", n_au=0, resp=False, shift="none")
    sv = init_variables(small_model, jax.random.key(0))
    np.testing.assert_array_equal(
        np.asarray(small_model.apply(sv, big, small, train=True, rngs={"dropout": jax.random.key(3)})["bvp"]),
        np.asarray(small_model.apply(sv, big, small)["bvp"]))


@pytest.mark.parametrize("big_shape,small_shape,message", [
    ((4, 144, 144, 3), (4, 9, 9, 3), "whole number of clips"),
    ((3, 144, 144, 3), (3, 9, 9, 1), r"small input must be \(N\*T, 9, 9, 3\)"),
    ((3, 3, 144, 144), (3, 9, 9, 3), r"big input must be \(N\*T, 144, 144, 3\) NHWC"),
    ((6, 144, 144, 3), (3, 9, 9, 3), "same number of frames"),
])
def test_wrong_input_shapes_raise_value_error(big_shape, small_shape, message):
    model = build_model()
    variables = init_variables(model, jax.random.key(0))
    with pytest.raises(ValueError, match=message):
        model.apply(variables, np.zeros(big_shape, np.float32), np.zeros(small_shape, np.float32))
