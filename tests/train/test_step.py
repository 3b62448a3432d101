"""The pmapped train step: PyTorch parity, 1 device == 4 devices, the task curriculum, mirrored clips."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from train_helpers import narrow_model_and_batch, subprocess_env

from bigsmall_jax.checkpoints.torch_import import convert_file
from bigsmall_jax.model import build_model
from bigsmall_jax.train import optim
from bigsmall_jax.train.parallel import AXIS, replicate, shard_batch, unreplicate
from bigsmall_jax.train.state import create_train_state
from bigsmall_jax.train.step import hflip_clips, make_train_step

DATA = Path(__file__).resolve().parents[1] / "data"


def test_five_steps_match_pytorch_adamw():
    """5 full-batch AdamW steps from the PyTorch init reproduce the reference losses (dropout off)."""
    mc, variables = convert_file(DATA / "bigsmall_random_init.pth")
    model = build_model(dataclasses.replace(mc, dropout=(0.0, 0.0, 0.0)))
    g = np.load(DATA / "bigsmall_golden.npz")
    batch = {"big": g["big"].transpose(0, 2, 3, 1), "small": g["small"].transpose(0, 2, 3, 1),
             "au": g["au_label"], "bvp": g["bvp_label"][:, 0], "resp": g["resp_label"][:, 0]}
    schedule = optim.make_schedule("constant", 1e-3, 5)
    tx = optim.make_optimizer(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0)
    state = replicate(create_train_state(model, tx, 0, params=variables["params"]), jax.devices()[:1])
    step = jax.pmap(make_train_step(model, schedule, seed=0, task_weights={}, au_pos_weight=g["au_pos_weight"]),
                    axis_name=AXIS, devices=jax.devices()[:1], donate_argnums=(0,))
    sharded = shard_batch(batch, 1, 3)
    got = []
    for _ in range(5):
        state, m = step(state, sharded)
        got.append([float(m[k][0]) for k in ("loss", "loss_au", "loss_bvp", "loss_resp")])
    np.testing.assert_allclose(np.array(got), g["train_losses"], rtol=1e-4)


_EQUIVALENCE_SCRIPT = textwrap.dedent("""
    import json, jax, numpy as np
    from bigsmall_jax.train import optim
    from bigsmall_jax.model import ModelConfig, build_model
    from bigsmall_jax.train.parallel import AXIS, replicate, shard_batch, unreplicate
    from bigsmall_jax.train.state import create_train_state
    from bigsmall_jax.train.step import make_train_step
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
        state = replicate(create_train_state(model, tx, 0), devices)
        step = jax.pmap(make_train_step(model, schedule, seed=3, task_weights={"bvp": 2.0},
                                        au_pos_weight=tuple(np.linspace(0.5, 3, 12)), hflip=True),
                        axis_name=AXIS, devices=devices, donate_argnums=(0,))
        losses = []
        for b in batches:
            state, m = step(state, shard_batch(b, n_dev, 3))
            losses.append([float(m[k][0]) for k in ("loss", "loss_au", "loss_bvp", "loss_resp")])
        params = unreplicate(state).params
        out[n_dev] = {"losses": losses, "params": [np.asarray(x).ravel()[:50].tolist()
                                                   for x in jax.tree_util.tree_leaves(params)]}
    print("RESULT" + json.dumps(out))
""")


def test_one_device_equals_four_devices_with_dropout():
    """Dropout and mirrored clips on: per-clip keys make the run independent of the device split (up to
    summation order)."""
    proc = subprocess.run([sys.executable, "-c", _EQUIVALENCE_SCRIPT], capture_output=True, text=True, timeout=300,
                          env=subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    one, four = out["1"], out["4"]
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)
    for a, b in zip(one["params"], four["params"], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    # The loss changes over the steps: the comparison is not between constants.
    assert len({round(x[0], 6) for x in one["losses"]}) == 4


def test_task_curriculum_switches_losses_on_at_their_start_step():
    """A task whose start step is 2 adds nothing to the loss (nor its gradient: SGD moves the bvp head only
    from step 2 on) before that step."""
    model, batch = narrow_model_and_batch(3, seed=1)
    step = jax.pmap(make_train_step(model, optax.constant_schedule(0.1), seed=0, task_weights={"bvp": 2.0},
                                    task_start_steps={"bvp": 2}, per_clip_dropout=False),
                    axis_name=AXIS, devices=jax.devices()[:1])
    state = replicate(create_train_state(model, optax.sgd(0.1), 0), jax.devices()[:1])
    sharded = shard_batch(batch, 1, 3)
    bvp_head = []
    for i in range(3):
        bvp_head.append(np.asarray(unreplicate(state).params["bvp"]["fc2"]["kernel"]).copy())
        state, m = step(state, sharded)
        m = {k: float(v[0]) for k, v in m.items()}
        want = m["loss_au"] + m["loss_resp"] + (2.0 * m["loss_bvp"] if i >= 2 else 0.0)
        assert m["loss"] == pytest.approx(want, rel=1e-6)
    bvp_head.append(np.asarray(unreplicate(state).params["bvp"]["fc2"]["kernel"]))
    np.testing.assert_array_equal(bvp_head[0], bvp_head[2])  # no bvp gradient in steps 0 and 1
    assert not np.allclose(bvp_head[2], bvp_head[3])


def test_hflip_clips_mirrors_the_chosen_clips_only():
    rng = np.random.default_rng(0)
    big = rng.normal(size=(6, 144, 144, 3)).astype(np.float32)  # 2 clips of 3 frames
    small = rng.normal(size=(6, 9, 9, 3)).astype(np.float32)
    got_big, got_small = hflip_clips(big, small, np.array([False, True]))
    np.testing.assert_array_equal(got_big[:3], big[:3])
    np.testing.assert_array_equal(got_big[3:], big[3:, :, ::-1])
    np.testing.assert_array_equal(got_small[3:], small[3:, :, ::-1])
    first_only = hflip_clips(big[::3], small, np.array([True, False]))[0]  # Big frames: first of each clip
    np.testing.assert_array_equal(first_only, np.stack([big[0, :, ::-1], big[3]]))


def test_hflip_step_trains_on_a_mirrored_batch():
    """With ``hflip`` a step's loss is the plain step's loss on one of the 4 ways of mirroring 2 clips, and
    over steps the flips change (more than one of the 4 is hit, one with a single clip mirrored)."""
    model, batch = narrow_model_and_batch(6, seed=2)

    def stepper(hflip):
        return jax.pmap(make_train_step(model, optax.constant_schedule(0.0), seed=0, task_weights={}, hflip=hflip),
                        axis_name=AXIS, devices=jax.devices()[:1])

    state = replicate(create_train_state(model, optax.sgd(0.0), 0), jax.devices()[:1])
    plain, mirrored = stepper(False), stepper(True)
    variants = []
    for flips in ((False, False), (False, True), (True, False), (True, True)):
        b = dict(batch)
        b["big"], b["small"] = (np.asarray(x) for x in hflip_clips(batch["big"], batch["small"], np.array(flips)))
        variants.append(float(plain(state, shard_batch(b, 1, 3))[1]["loss"][0]))
    assert len({round(v, 5) for v in variants}) == 4  # mirroring changes the loss
    hit = set()
    for _ in range(8):  # the learning rate is 0: only the step number (the flips' key) changes
        state, m = mirrored(state, shard_batch(batch, 1, 3))
        got = float(m["loss"][0])
        match = [i for i, v in enumerate(variants) if abs(got - v) < 1e-5 * abs(v)]
        assert len(match) == 1, (got, variants)
        hit.add(match[0])
    assert len(hit) > 1 and hit & {1, 2}  # clips flip independently of each other
