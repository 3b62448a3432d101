"""`bigsmall_jax.runtime`: the compiled forward pass evaluation, inference and the benchmark share.

Truth: ``model.apply`` in one plain jitted program (the path the PyTorch parity tests pin).
"""

import jax
import numpy as np
import pytest

from bigsmall_jax import runtime as rt
from bigsmall_jax.model import big_stem, build_model, init_variables, named_config


def _inputs(config, n_clips, seed=0):
    rng = np.random.default_rng(seed)
    n = n_clips * config.n_segment
    big = rng.normal(size=(n, config.big_size, config.big_size, 3)).astype(np.float32)
    small = rng.normal(size=(n, config.small_size, config.small_size, 3)).astype(np.float32)
    return big, small


@pytest.mark.parametrize("name", ["bigsmall", "bigsmall_no_downsample", "big_au", "small_bvp"])
def test_forward_equals_one_program(name):
    model = build_model(named_config(name))
    variables = init_variables(model, jax.random.key(1))
    big, small = _inputs(model.config, 2)
    want = jax.jit(lambda v, b, s: model.apply(v, b, s, train=False))(variables, big, small)
    forward = rt.Forward(model, tuned=True)
    on_cpu = jax.default_backend() == "cpu"
    assert forward.split == (on_cpu and name != "small_bvp")
    for got in (forward(variables, big, small), forward.compile(variables, big, small)(variables, big, small)):
        assert set(got) == set(want)
        for k in want:
            assert got[k].shape == want[k].shape and got[k].dtype == np.float32
            np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want[k]), rtol=1e-4, atol=1e-5)


def test_untuned_and_bfloat16_forward_is_one_program():
    assert not rt.Forward(build_model(named_config("bigsmall")), tuned=False).split
    assert not rt.Forward(build_model(named_config("bigsmall", dtype="bfloat16")), tuned=True).split


def test_user_ynn_flag_turns_the_presets_off(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
    assert rt.user_set_ynn_flag()
    assert not rt.Forward(build_model(named_config("bigsmall"))).tuned


def test_stem_is_the_first_conv_on_the_first_frame_of_each_clip():
    """big_stem = relu(conv1(first frame of each clip)), by a direct convolution with conv1's parameters."""
    model = build_model(named_config("bigsmall"))
    variables = init_variables(model, jax.random.key(2))
    big, _ = _inputs(model.config, 3)
    p = variables["params"]["big"]["conv1"]
    first = big[:: model.config.n_segment]
    want = jax.lax.conv_general_dilated(first, p["kernel"], (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["bias"]
    got = big_stem(model, variables, big)
    assert got.shape == (3, 144, 144, 32)
    np.testing.assert_allclose(np.asarray(got), np.maximum(np.asarray(want), 0), rtol=1e-5, atol=1e-5)


def test_from_stem_checks_the_shape():
    model = build_model(named_config("bigsmall"))
    variables = init_variables(model, jax.random.key(0))
    big, small = _inputs(model.config, 2)
    with pytest.raises(ValueError, match="from_stem"):
        model.apply(variables, big, small, from_stem=True)  # frames, not the stem's output
    with pytest.raises(ValueError, match="no Big branch"):
        small_model = build_model(named_config("small_bvp"))
        big_stem(small_model, init_variables(small_model, jax.random.key(0)), big)


def test_configure_rejects_an_unknown_purpose():
    with pytest.raises(rt.UserError, match="unknown purpose"):
        rt.configure_cpu_runtime(purpose="infer_stem", allocator=False)
