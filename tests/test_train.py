"""Training: PyTorch parity of the step, device-count invariance, configs, resume, NaN stop, optimizer pieces."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from bigsmall_jax.errors import UserError, cli_main
from bigsmall_jax.model.bigsmall import ModelConfig, build_model
from bigsmall_jax.train import optim
from bigsmall_jax.train import trainer as train

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
TINY_MODEL = ["model.big_filters=(4,4,4,8,8,8)", "model.small_filters=(4,4,4,8)", "model.dense_units=8"]


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def _tiny_overrides(data_dir, builder, *extra) -> list[str]:
    """Overrides that train a tiny model on the session's tiny synthetic dataset (see conftest.py)."""
    settings = {**builder.builder_config.synthetic, "tail": builder.builder_config.tail}
    return [f"dataset.data_dir={str(data_dir)!r}", f"dataset.settings={settings!r}", *TINY_MODEL,
            "train.batch_clips=4", "train.num_epochs=2", "train.steps_per_epoch=5", "train.checkpoint_every_steps=2",
            "train.eval_batch_clips=8", "optim.schedule='warmup_cosine'", "optim.warmup_steps=2", *extra]


def _tiny_config(data_dir, builder, *extra):
    config = train.load_config("synthetic")
    return train.apply_overrides(config, _tiny_overrides(data_dir, builder, *extra))


# ----------------------------------------------------------------------------------------------------------
# The step against PyTorch.


def test_five_steps_match_pytorch_adamw():
    """5 full-batch AdamW steps from the PyTorch init reproduce the reference losses (dropout off)."""
    from bigsmall_jax.checkpoints.torch_import import convert_file

    mc, variables = convert_file(DATA / "bigsmall_random_init.pth")
    model = build_model(dataclasses.replace(mc, dropout=(0.0, 0.0, 0.0)))
    g = np.load(DATA / "bigsmall_golden.npz")
    batch = {"big": g["big"].transpose(0, 2, 3, 1), "small": g["small"].transpose(0, 2, 3, 1),
             "au": g["au_label"], "bvp": g["bvp_label"][:, 0], "resp": g["resp_label"][:, 0]}
    schedule = optim.make_schedule("constant", 1e-3, 5)
    tx = optim.make_optimizer(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0)
    state = train.replicate(train.create_train_state(model, tx, 0, params=variables["params"]), jax.devices()[:1])
    step = jax.pmap(train.make_train_step(model, schedule, seed=0, task_weights={}, au_pos_weight=g["au_pos_weight"]),
                    axis_name=train.AXIS, devices=jax.devices()[:1], donate_argnums=(0,))
    sharded = train.shard_batch(batch, 1, 3)
    got = []
    for _ in range(5):
        state, m = step(state, sharded)
        got.append([float(m[k][0]) for k in ("loss", "loss_au", "loss_bvp", "loss_resp")])
    np.testing.assert_allclose(np.array(got), g["train_losses"], rtol=1e-4)


def test_torch_style_init_matches_the_pytorch_reference_init():
    """train.init='torch' draws like PyTorch's defaults: the reference file holds such a draw."""
    from bigsmall_jax.checkpoints.torch_import import convert_file

    mc, ref = convert_file(DATA / "bigsmall_random_init.pth")
    model = build_model(mc)
    ours = train.create_train_state(model, optax.sgd(0.1), 0, init="torch").params
    flax_default = train.create_train_state(model, optax.sgd(0.1), 0).params
    fan_in = {path[:-1]: int(np.prod(np.shape(leaf)[:-1]))
              for path, leaf in jax.tree_util.tree_flatten_with_path(ref["params"])[0] if path[-1].key == "kernel"}
    checked = 0
    for path, r in jax.tree_util.tree_flatten_with_path(ref["params"])[0]:
        o = np.asarray(_get(ours, path))
        f = np.asarray(_get(flax_default, path))
        bound = 1.0 / np.sqrt(fan_in[path[:-1]])
        r = np.asarray(r)
        assert np.abs(r).max() <= bound * (1 + 1e-6) and np.abs(o).max() <= bound * (1 + 1e-6)
        if r.size >= 300:  # uniform(-b, b): std b / sqrt(3), as in the reference draw
            assert np.std(o) == pytest.approx(np.std(r), rel=0.1)
            if path[-1].key == "kernel":
                assert np.std(f) == pytest.approx(np.sqrt(3) * np.std(r), rel=0.15)  # Flax's lecun_normal
            checked += 1
    assert checked >= 12


def _get(tree, path):
    for k in path:
        tree = tree[k.key]
    return tree


# ----------------------------------------------------------------------------------------------------------
# 1 device == 4 devices.

_EQUIVALENCE_SCRIPT = textwrap.dedent("""
    import json, jax, numpy as np
    from bigsmall_jax.train import optim
    from bigsmall_jax.train import trainer as train
    from bigsmall_jax.model.bigsmall import ModelConfig, build_model
    assert jax.local_device_count() == 4, jax.devices()
    model = build_model(ModelConfig(big_filters=(4, 4, 4, 8, 8, 8), small_filters=(4, 4, 4, 8), dense_units=8))
    schedule = optim.make_schedule("warmup_cosine", 1e-2, 4, warmup_steps=1)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(4):  # 8 clips of 3 frames; labels missing unevenly (device 0 gets most of the NaNs)
        n = 24
        au = (rng.random((n, 12)) > 0.5).astype(np.float32)
        au[:9][rng.random((9, 12)) < 0.7] = np.nan
        bvp = rng.normal(size=n).astype(np.float32)
        bvp[:5] = np.nan
        batches.append({"big": rng.normal(size=(n, 144, 144, 3)).astype(np.float32),
                        "small": rng.normal(size=(n, 9, 9, 3)).astype(np.float32),
                        "au": au, "bvp": bvp, "resp": rng.normal(size=n).astype(np.float32)})
    out = {}
    for n_dev in (1, 4):
        devices = jax.devices()[:n_dev]
        tx = optim.make_optimizer(schedule)
        state = train.replicate(train.create_train_state(model, tx, 0), devices)
        step = jax.pmap(train.make_train_step(model, schedule, seed=3, task_weights={"bvp": 2.0},
                                              au_pos_weight=tuple(np.linspace(0.5, 3, 12))),
                        axis_name=train.AXIS, devices=devices, donate_argnums=(0,))
        losses = []
        for b in batches:
            state, m = step(state, train.shard_batch(b, n_dev, 3))
            losses.append([float(m[k][0]) for k in ("loss", "loss_au", "loss_bvp", "loss_resp")])
        params = train.unreplicate(state).params
        out[n_dev] = {"losses": losses, "params": [np.asarray(x).ravel()[:50].tolist()
                                                   for x in jax.tree_util.tree_leaves(params)]}
    print("RESULT" + json.dumps(out))
""")


def test_one_device_equals_four_devices_with_dropout():
    """Dropout on: per-clip keys make the run independent of the device split (up to summation order)."""
    proc = subprocess.run([sys.executable, "-c", _EQUIVALENCE_SCRIPT], capture_output=True, text=True, timeout=300,
                          env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    one, four = out["1"], out["4"]
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)
    for a, b in zip(one["params"], four["params"], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    # The loss changes over the steps: the comparison is not between constants.
    assert len({round(x[0], 6) for x in one["losses"]}) == 4


# ----------------------------------------------------------------------------------------------------------
# Batch sharding.


def test_shard_batch_keeps_whole_clips_in_order():
    frames = np.arange(8 * 3)  # 8 clips of 3 frames, frame i has value i
    sharded = train.shard_batch({"x": frames, "y": np.stack([frames] * 2, 1)}, 4, 3)
    assert sharded["x"].shape == (4, 6) and sharded["y"].shape == (4, 6, 2)
    for d in range(4):  # device d: clips 2d and 2d+1, i.e. frames 6d .. 6d+5
        np.testing.assert_array_equal(sharded["x"][d], np.arange(6 * d, 6 * d + 6))
    with pytest.raises(UserError, match="cannot be split evenly over 3 devices"):
        train.shard_batch({"x": frames}, 3, 3)


def test_batch_not_divisible_by_devices_names_both_numbers():
    with pytest.raises(UserError, match=r"batch_clips=6 .* 4 devices"):
        train.check_batch_divisible(6, 4)
    train.check_batch_divisible(8, 4)


# ----------------------------------------------------------------------------------------------------------
# Configs.


@pytest.mark.parametrize("name", ["synthetic", "bp4d_fold1", "bp4d_fold2", "bp4d_fold3", "big_au", "small_bvp",
                                  "small_resp"])
def test_named_configs_load_and_validate(name):
    config = train.load_config(name)
    mc = train.validate_config(config)
    if name.startswith("bp4d") or name in ("big_au", "small_bvp", "small_resp"):
        from bigsmall_jax.datasets.recording import BP4D_AU_POS_WEIGHT

        assert config.dataset.name == "bp4d_plus"
        assert config.optim.lr == 1e-3 and config.optim.weight_decay == 0.0 and config.train.num_epochs == 5
        assert config.train.select == "last"
        want = () if name.startswith("small") else BP4D_AU_POS_WEIGHT  # no AU head, no AU weights
        assert tuple(config.loss.au_pos_weight) == want
    expected_heads = {"big_au": ["au"], "small_bvp": ["bvp"], "small_resp": ["resp"]}.get(name, ["au", "bvp", "resp"])
    assert [h for h, _ in mc.heads] == expected_heads


def test_config_by_path_and_folds_differ():
    a = train.load_config(str(ROOT / "configs" / "bp4d_fold2.py"))
    assert a.dataset.config == "fold2"
    with pytest.raises(UserError, match="no such config file"):
        train.load_config("no_such_config")


def test_overrides_parse_literals_and_dotted_keys():
    config = train.load_config("synthetic")
    train.apply_overrides(config, ["model.n_segment=4", "optim.lr=3e-4", "model.big_filters=(8,8,8,16,16,64)",
                                   "optim.schedule=one_cycle", "loss.pcgrad=True", "dataset.settings.n_subjects=5"])
    assert config.model.n_segment == 4 and config.optim.lr == 3e-4
    assert config.model.big_filters == (8, 8, 8, 16, 16, 64)
    assert config.optim.schedule == "one_cycle" and config.loss.pcgrad is True
    assert config.dataset.settings.n_subjects == 5
    assert train.model_config(config).n_segment == 4


def test_unknown_or_bad_override_is_a_user_error():
    config = train.load_config("synthetic")
    with pytest.raises(UserError, match=r"unknown config key 'optim\.learning_rate'.*optim\.lr"):
        train.apply_overrides(config, ["optim.learning_rate=1"])
    with pytest.raises(UserError, match=r"unknown config key 'nosection\.x'"):
        train.apply_overrides(config, ["nosection.x=1"])
    with pytest.raises(UserError, match="not of the form key=value"):
        train.apply_overrides(config, ["optim.lr"])
    with pytest.raises(UserError, match=r"train\.batch_clips"):
        train.apply_overrides(config, ["train.batch_clips='many'"])
    train.apply_overrides(config, ["model.variant='nonsense'"])
    with pytest.raises(UserError, match="variant"):
        train.validate_config(config)


def test_cli_bad_key_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bigsmall_jax.train", "--workdir", str(tmp_path / "w"),
                           "optim.lrr=1"], capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "optim.lrr" in lines[0]
    assert not (tmp_path / "w").exists()  # nothing written


# ----------------------------------------------------------------------------------------------------------
# Optimizer pieces.


def _pcgrad_loop(grads: list[np.ndarray], order: list[int]) -> np.ndarray:
    """PCGrad as written in Yu et al. (2020), Algorithm 1, with plain Python loops."""
    out = []
    for i, g in enumerate(grads):
        gi = g.astype(np.float64).copy()
        for j in order:
            if j == i:
                continue
            gj = grads[j].astype(np.float64)
            dot = float(gi @ gj)
            if dot < 0:
                gi = gi - dot / float(gj @ gj) * gj
        out.append(gi)
    return np.sum(out, axis=0)


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
    np.testing.assert_allclose(flat, _pcgrad_loop(grads, order), rtol=1e-5, atol=1e-6)
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


def _narrow_model_and_batch(n_frames: int, seed: int):
    """A narrow BigSmall without dropout and a random batch of `n_frames` frames with every label."""
    model = build_model(ModelConfig(big_filters=(4, 4, 4, 8, 8, 8), small_filters=(4, 4, 4, 8), dense_units=8,
                                    dropout=(0.0, 0.0, 0.0)))
    rng = np.random.default_rng(seed)
    batch = {"big": rng.normal(size=(n_frames, 144, 144, 3)).astype(np.float32),
             "small": rng.normal(size=(n_frames, 9, 9, 3)).astype(np.float32),
             "au": (rng.random((n_frames, 12)) > 0.5).astype(np.float32),
             "bvp": rng.normal(size=n_frames).astype(np.float32), "resp": rng.normal(size=n_frames).astype(np.float32)}
    return model, batch


def test_pcgrad_step_applies_the_projected_task_gradients():
    """With SGD(lr=1), the step's parameter change is minus PCGrad of the three task gradients, each computed
    on its own with jax.grad."""
    from bigsmall_jax.train import losses

    model, batch = _narrow_model_and_batch(6, seed=0)
    weights = {"au": 1.0, "bvp": 3.0, "resp": 0.5}
    state0 = train.create_train_state(model, optax.sgd(1.0), 0)
    step = jax.pmap(train.make_train_step(model, optax.constant_schedule(1.0), seed=7, task_weights=weights,
                                          pcgrad=True), axis_name=train.AXIS, devices=jax.devices()[:1])
    state1, _ = step(train.replicate(state0, jax.devices()[:1]), train.shard_batch(batch, 1, 3))
    delta = _flat_params(train.unreplicate(state1).params) - _flat_params(state0.params)

    def task_loss(params, task):
        out = model.apply({"params": params}, batch["big"], batch["small"], train=True)
        s, c = losses.task_sums(out, batch)[task]
        return weights[task] * s / c

    grads = [jax.grad(task_loss)(state0.params, t) for t in ("au", "bvp", "resp")]
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(7), 1), 2**31 - 1)
    order = [int(i) for i in jax.random.permutation(key, 3)]
    want = _pcgrad_loop([_flat_params(g) for g in grads], order)
    np.testing.assert_allclose(-delta, want, rtol=1e-4, atol=1e-6)
    assert not np.allclose(want, sum(_flat_params(g) for g in grads), atol=1e-4)  # something was projected


def test_task_curriculum_switches_losses_on_at_their_start_step():
    """A task whose start step is 2 adds nothing to the loss (nor its gradient: SGD moves the bvp head only
    from step 2 on) before that step."""
    model, batch = _narrow_model_and_batch(3, seed=1)
    step = jax.pmap(train.make_train_step(model, optax.constant_schedule(0.1), seed=0, task_weights={"bvp": 2.0},
                                          task_start_steps={"bvp": 2}, per_clip_dropout=False),
                    axis_name=train.AXIS, devices=jax.devices()[:1])
    state = train.replicate(train.create_train_state(model, optax.sgd(0.1), 0), jax.devices()[:1])
    sharded = train.shard_batch(batch, 1, 3)
    bvp_head = []
    for i in range(3):
        bvp_head.append(np.asarray(train.unreplicate(state).params["bvp"]["fc2"]["kernel"]).copy())
        state, m = step(state, sharded)
        m = {k: float(v[0]) for k, v in m.items()}
        want = m["loss_au"] + m["loss_resp"] + (2.0 * m["loss_bvp"] if i >= 2 else 0.0)
        assert m["loss"] == pytest.approx(want, rel=1e-6)
    bvp_head.append(np.asarray(train.unreplicate(state).params["bvp"]["fc2"]["kernel"]))
    np.testing.assert_array_equal(bvp_head[0], bvp_head[2])  # no bvp gradient in steps 0 and 1
    assert not np.allclose(bvp_head[2], bvp_head[3])


# ----------------------------------------------------------------------------------------------------------
# Whole runs: resume, NaN stop.


def _flat_params(params) -> np.ndarray:
    return np.concatenate([np.asarray(x).ravel() for x in jax.tree_util.tree_leaves(params)])


def test_resume_after_stop_gives_the_same_parameters(tiny_synthetic_dataset, tmp_path):
    """A run stopped mid-epoch (as if killed: steps after the last checkpoint are lost) and resumed by the CLI
    ends with the same parameters as an uninterrupted run, then is tested and exported."""
    data_dir, builder = tiny_synthetic_dataset
    uninterrupted = train.train_and_evaluate(_tiny_config(data_dir, builder), tmp_path / "a", evaluate_test=False)
    assert uninterrupted.final_step == 10 and not uninterrupted.stopped_early

    workdir = tmp_path / "b"
    cmd = [sys.executable, "-m", "bigsmall_jax.train", "--workdir", str(workdir), *_tiny_overrides(data_dir, builder)]
    env = _env(BIGSMALL_CPU_PRESETS="0")  # the XLA flags of the in-process run above
    first = subprocess.run([*cmd, "train.stop_after_steps=7"], capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert not (workdir / "metrics.json").exists()
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 6  # checkpoints at 2, 4, end of epoch 0 (5), 6; step 7 is lost
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from step 6" in second.stderr

    from bigsmall_jax.checkpoints import load_checkpoint

    _, variables = load_checkpoint(workdir)
    np.testing.assert_allclose(_flat_params(variables["params"]), _flat_params(uninterrupted.params),
                               rtol=0, atol=1e-6)
    metrics = json.loads((workdir / "metrics.json").read_text())
    for key in ("hr_mae", "rr_mae", "au_f1_mean"):
        assert key in metrics
    assert metrics["run"]["steps"] == 10
    printed = json.loads(second.stdout)
    assert printed["au_f1_mean"] == metrics["au_f1_mean"]
    log_steps = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert log_steps == list(range(1, 11))  # the lost step 7 is logged once
    assert (workdir / "loss_curves.png").stat().st_size > 0


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_synthetic_dataset, tmp_path):
    data_dir, builder = tiny_synthetic_dataset
    config = _tiny_config(data_dir, builder, "train.debug_nan_step=7", "train.checkpoint_every_steps=3")
    with pytest.raises(train.TrainingDiverged, match=r"at step 7 .*last good checkpoint is step 6"):
        train.train_and_evaluate(config, tmp_path / "w")
    manager = train._checkpoint_manager(tmp_path / "w" / "checkpoints", 3)
    assert manager.latest_step() == 6
    mc = train.model_config(config)
    tx, _ = optim.optimizer_from_config(config.optim, 10)
    target = jax.device_get(train.create_train_state(build_model(mc), tx, 0))
    state, progress = train.restore_train_checkpoint(manager, target)
    assert int(state.step) == 6 and progress["epoch"] == 1
    assert np.all(np.isfinite(_flat_params(state.params)))
    assert not (tmp_path / "w" / "metrics.json").exists()


def test_huge_learning_rate_is_reported_by_the_cli(tiny_synthetic_dataset, tmp_path, capsys):
    data_dir, builder = tiny_synthetic_dataset
    argv = ["--workdir", str(tmp_path / "w"),
            *_tiny_overrides(data_dir, builder, "optim.lr=1e30", "optim.schedule='constant'")]
    with pytest.raises(SystemExit) as exit_info:  # main() without its process-wide CPU presets
        cli_main(train.run)(argv)
    assert exit_info.value.code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "at step" in error[0] and "training stopped" in error[0]


def test_workdir_with_another_config_is_refused(tiny_synthetic_dataset, tmp_path):
    data_dir, builder = tiny_synthetic_dataset
    # Stopped before its first step: the workdir holds the run's config but no compiled step was needed.
    train.train_and_evaluate(_tiny_config(data_dir, builder, "train.stop_after_steps=0"), tmp_path / "w")
    with pytest.raises(UserError, match=r"different config \(keys optim\.lr\)"):
        train.train_and_evaluate(_tiny_config(data_dir, builder, "optim.lr=0.5"), tmp_path / "w")


def test_model_config_section_matches_model_config_fields():
    config = train.load_config("synthetic")
    assert set(config.model.keys()) == {f.name for f in dataclasses.fields(ModelConfig)}
