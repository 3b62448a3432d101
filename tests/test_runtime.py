"""`bigsmall_jax.runtime`: the compiled forward pass evaluation, inference and the benchmark share.

Truth: ``model.apply`` in one plain jitted program (the path the PyTorch parity tests pin).
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigsmall_jax import runtime as rt
from bigsmall_jax.errors import UserError
from bigsmall_jax.model import big_stem, build_model, init_variables, named_config
from bigsmall_jax.model.config import DTYPES


def _inputs(config, n_clips, seed=0):
    rng = np.random.default_rng(seed)
    n = n_clips * config.n_segment
    big = rng.normal(size=(n, config.big_size, config.big_size, 3)).astype(np.float32)
    small = rng.normal(size=(n, config.small_size, config.small_size, 3)).astype(np.float32)
    return big, small


@pytest.mark.parametrize("name", ["bigsmall", "bigsmall_no_downsample", "big_au", "small_bvp", "bigsmall_bidir"])
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


def test_configure_cpu_runtime_appends_flags_once(monkeypatch):
    monkeypatch.setattr(rt, "_backends_initialized", lambda: False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    got = rt.configure_cpu_runtime(allocator=False)
    tuned = list(rt.tuned_xla_flags("float32", "train"))
    assert got == {"xla_flags": tuned, "allocator": False}
    assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=1", *tuned]
    assert rt.configure_cpu_runtime(allocator=False)["xla_flags"] == []  # already there: not added twice
    # A user's own value of the flag wins.
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
    assert rt.configure_cpu_runtime(allocator=False)["xla_flags"] == []
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type="


@pytest.mark.parametrize("dtype,purpose", sorted(rt.TUNED_YNN_FUSIONS))
def test_tuned_presets_are_accepted_by_xla(dtype, purpose):
    """XLA aborts the process on an XLA_FLAGS value it cannot parse: run one computation under the flags;
    and compile with the same preset as per-compilation options."""
    env = {**os.environ, "XLA_FLAGS": " ".join(rt.tuned_xla_flags(dtype, purpose)), "JAX_PLATFORMS": "cpu"}
    code = "import jax, jax.numpy as jnp; print(float(jax.jit(lambda x: jnp.maximum(x @ x, 0).sum())(jnp.eye(4))))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "4.0"
    x = jnp.eye(4, dtype=DTYPES[dtype])
    compiled = jax.jit(lambda v: jnp.maximum(v @ v, 0)).lower(x).compile(
        compiler_options=rt.tuned_compiler_options(dtype, purpose))
    np.testing.assert_array_equal(np.asarray(compiled(x), np.float32), np.eye(4))


def test_unknown_preset_is_a_user_error():
    with pytest.raises(UserError, match="no tuned XLA preset"):
        rt.tuned_compiler_options("float32", "serve")


def test_configure_cpu_runtime_leaves_a_running_backend_alone(monkeypatch, caplog):
    monkeypatch.setattr(rt, "_backends_initialized", lambda: True)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert rt.configure_cpu_runtime(allocator=False)["xla_flags"] == []
    assert "XLA_FLAGS" not in os.environ
    assert "already running" in caplog.text
