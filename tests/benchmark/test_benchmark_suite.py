"""The benchmark command (a tiny run: every JSON field present and consistent, bad input refused) and the
ops `bigsmall_jax.model.bigsmall` uses for speed (checked against the plain Flax / JAX ops they replace).

No timing assertions: timings belong to ``python -m bigsmall_jax.benchmark``, not to the test suite.
"""

import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigsmall_jax import runtime as rt
from bigsmall_jax.benchmark import suite as bm
from bigsmall_jax.model.bigsmall import Dropout, InputConv, avg_pool, relu

MODEL_FIELDS = ("flops_per_clip", "flops_per_frame", "train_flops_per_clip", "params", "n_segment", "batch_clips",
                "infer_frames_per_s", "infer_latency_ms", "train_clips_per_s", "train_step_ms", "compile_s",
                "compile_infer_s", "compile_train_s", "infer_gflops", "infer_peak_fraction", "latency_gflops",
                "latency_peak_fraction", "train_gflops", "train_peak_fraction")
PIPELINE_FIELDS = ("records_per_s", "batches_per_s", "epoch_s", "step_only_s", "loader_overhead", "steps_per_epoch",
                   "train_records", "batch_clips", "epoch_synchronous_s", "synchronous_overhead")


# ---------------------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One tiny benchmark run: BigSmall and the three single-task baselines, 1 clip, 1 round, profiled."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    data_dir = tmp_path_factory.mktemp("bench_data")
    bm.main(["--quick", "--models", "bigsmall", "big_au", "small_bvp", "small_resp", "--batch", "1", "--repeats",
             "1", "--no-tune", "--profile", "--data-dir", str(data_dir), "--output", str(out)])
    return json.loads(out.read_text())


def test_quick_run_has_every_field(quick_run, capsys):
    r = quick_run
    assert r["dtype"] == "float32" and r["batch_clips"] == 1
    assert r["device"].startswith(jax.devices()[0].platform)
    assert r["matmul_peak_gflops"] > 0 and r["matmul_peak_gflops_best"] >= r["matmul_peak_gflops"] * (1 - 1e-9)
    assert set(r["models"]) == {"bigsmall", "big_au", "small_bvp", "small_resp", "single_task_sum"}
    for name, m in r["models"].items():
        for field in MODEL_FIELDS:
            assert math.isfinite(m[field]) and m[field] > 0, (name, field, m.get(field))
    pipe = r["input_pipeline"]
    for field in PIPELINE_FIELDS:
        assert math.isfinite(pipe[field]), field
    assert pipe["steps_per_epoch"] == pipe["train_records"] // pipe["batch_clips"] >= 1
    assert pipe["epoch_s"] > 0 and pipe["step_only_s"] > 0
    assert pipe["loader_overhead"] == pytest.approx(pipe["epoch_s"] / pipe["step_only_s"] - 1)
    assert set(r["load_avg"]) == {"before", "after"}


def test_quick_run_figures_are_consistent(quick_run):
    m = quick_run["models"]
    peak = quick_run["matmul_peak_gflops"]
    big = m["bigsmall"]
    assert big["params"] == 2_142_478  # the paper's model (tests/test_models.py counts it analytically)
    assert big["n_segment"] == 3
    assert big["flops_per_frame"] == pytest.approx(big["flops_per_clip"] / 3)
    # A train step costs about three forward passes (forward, input and weight gradients).
    assert 2.0 < big["train_flops_per_clip"] / big["flops_per_clip"] < 4.0
    for f in m.values():
        assert f["infer_peak_fraction"] == pytest.approx(f["flops_per_frame"] * f["infer_frames_per_s"] / 1e9 / peak)
        assert f["train_peak_fraction"] == pytest.approx(f["train_flops_per_clip"] * f["train_clips_per_s"] / 1e9
                                                         / peak)
        assert f["latency_peak_fraction"] == pytest.approx(f["flops_per_clip"] / (f["infer_latency_ms"] / 1e3) / 1e9
                                                           / peak)
    # The three baselines run one after the other: costs add, times per frame add.
    parts = [m[k] for k in bm.SINGLE_TASK_MODELS]
    s = m["single_task_sum"]
    for key in ("flops_per_clip", "params", "infer_latency_ms", "train_step_ms"):
        assert s[key] == pytest.approx(sum(p[key] for p in parts))
    assert 1 / s["infer_frames_per_s"] == pytest.approx(sum(1 / p["infer_frames_per_s"] for p in parts))
    assert 1 / s["train_clips_per_s"] == pytest.approx(sum(1 / p["train_clips_per_s"] for p in parts))
    # BigSmall costs far less than the three baselines together (the paper's efficiency claim).
    assert big["flops_per_clip"] < 0.5 * s["flops_per_clip"]


def test_quick_run_profile(quick_run):
    prof = quick_run["profile"]
    assert prof["model"] == "bigsmall"
    rows = prof["ops"]
    assert [r["op"] for r in rows[-2:]] == ["(all ops)", "(step)"]
    ops = rows[:-2]
    assert ops and all(r["ms"] >= 0 and r["what"] for r in ops)
    assert [r["ms"] for r in ops] == sorted((r["ms"] for r in ops), reverse=True)
    assert sum(r["share"] for r in ops) <= 1 + 1e-9
    assert any("convolution" in r["what"] for r in ops)


def test_table_lists_every_model(quick_run):
    text = bm.format_table({**quick_run, "load_avg": quick_run["load_avg"]["before"]})
    for name in quick_run["models"]:
        assert name in text
    assert "loader overhead" in text


@pytest.mark.parametrize("argv,message", [
    (["--models", "bigsmall", "nope"], "unknown model(s) nope"),
    (["--dtype", "float64"], "unknown --dtype 'float64'"),
    (["--batch", "0"], "--batch and --repeats must be >= 1"),
    (["--output", "/no/such/dir/out.json"], "no such directory for --output"),
])
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bm.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


# ---------------------------------------------------------------------------------------- the pieces


def test_time_interleaved_runs_round_robin():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    times = bm.time_interleaved(fns, repeats=4, warmup=2, progress=False)
    assert calls == ["a", "b", "c"] * 6
    assert {k: v.shape for k, v in times.items()} == {"a": (4,), "b": (4,), "c": (4,)}
    assert all((v >= 0).all() for v in times.values())


def test_peak_fractions_closed_form():
    fig = {"flops_per_frame": 2e8, "flops_per_clip": 6e8, "infer_frames_per_s": 500.0, "infer_latency_ms": 10.0,
           "train_flops_per_clip": 1.8e9, "train_clips_per_s": 20.0}
    got = bm.peak_fractions(fig, peak_gflops=200.0)
    assert got["infer_gflops"] == pytest.approx(100.0) and got["infer_peak_fraction"] == pytest.approx(0.5)
    assert got["latency_gflops"] == pytest.approx(60.0) and got["latency_peak_fraction"] == pytest.approx(0.3)
    assert got["train_gflops"] == pytest.approx(36.0) and got["train_peak_fraction"] == pytest.approx(0.18)


def test_configure_cpu_runtime_appends_flags_once(monkeypatch):
    monkeypatch.setattr(rt, "_backends_initialized", lambda: False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    got = rt.configure_cpu_runtime(allocator=False)
    tuned = list(rt.tuned_xla_flags("float32", "train"))
    assert got == {"xla_flags": tuned, "allocator": False}
    import os

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
    import os
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": " ".join(rt.tuned_xla_flags(dtype, purpose)), "JAX_PLATFORMS": "cpu"}
    code = "import jax, jax.numpy as jnp; print(float(jax.jit(lambda x: jnp.maximum(x @ x, 0).sum())(jnp.eye(4))))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "4.0"
    x = jnp.eye(4, dtype=bm.DTYPES[dtype])
    compiled = jax.jit(lambda v: jnp.maximum(v @ v, 0)).lower(x).compile(
        compiler_options=rt.tuned_compiler_options(dtype, purpose))
    np.testing.assert_array_equal(np.asarray(compiled(x), np.float32), np.eye(4))


def test_unknown_preset_is_a_user_error():
    with pytest.raises(bm.UserError, match="no tuned XLA preset"):
        rt.tuned_compiler_options("float32", "serve")


def test_configure_cpu_runtime_leaves_a_running_backend_alone(monkeypatch, caplog):
    monkeypatch.setattr(rt, "_backends_initialized", lambda: True)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert rt.configure_cpu_runtime(allocator=False)["xla_flags"] == []
    import os

    assert "XLA_FLAGS" not in os.environ
    assert "already running" in caplog.text


def test_synthetic_batch_layout():
    from bigsmall_jax.model.bigsmall import named_config

    config = named_config("bigsmall")
    b = bm.synthetic_batch(config, n_clips=2)
    assert b["big"].shape == (6, 144, 144, 3) and b["small"].shape == (6, 9, 9, 3)
    assert b["au"].shape == b["au_mask"].shape == (6, 12)
    assert set(np.unique(b["au"])) <= {0.0, 1.0}
    for key in ("bvp", "resp", "bvp_mask", "resp_mask", "frame_mask"):
        assert b[key].shape == (6,)
    assert all(v.dtype == np.float32 for v in b.values())


# ---------------------------------------------------------------------------------------- ops written for speed


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
