"""Whole training runs (API and command line): resume, NaN stop, workdir checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from train_helpers import flat_params, subprocess_env, tiny_overrides

from bigsmall_jax.checkpoints import load_checkpoint
from bigsmall_jax.errors import UserError, cli_main
from bigsmall_jax.model import build_model
from bigsmall_jax.train import optim
from bigsmall_jax.train.__main__ import run
from bigsmall_jax.train.checkpointing import checkpoint_manager, restore_train_checkpoint
from bigsmall_jax.train.config import apply_overrides, load_config, model_config
from bigsmall_jax.train.loop import Hooks, TrainingDiverged, train_and_evaluate
from bigsmall_jax.train.state import create_train_state
from bigsmall_jax.train.workdir_lock import LOCK_NAME, WorkdirLock


def _tiny_config(data_dir, builder, *extra):
    config = load_config("synthetic")
    return apply_overrides(config, tiny_overrides(data_dir, builder, *extra))


def test_cli_bad_key_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bigsmall_jax.train", "--workdir", str(tmp_path / "w"),
                           "optim.lrr=1"], capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "optim.lrr" in lines[0]
    assert not (tmp_path / "w").exists()  # nothing written


def test_resume_after_stop_gives_the_same_parameters(tiny_synthetic_dataset, tmp_path):
    """A run stopped mid-epoch (as if killed: steps after the last checkpoint are lost) and resumed by the CLI
    ends with the same parameters as an uninterrupted run, then is tested and exported."""
    data_dir, builder = tiny_synthetic_dataset
    uninterrupted = train_and_evaluate(_tiny_config(data_dir, builder), tmp_path / "a", evaluate_test=False)
    assert uninterrupted.final_step == 10 and not uninterrupted.stopped_early

    workdir = tmp_path / "b"
    cmd = [sys.executable, "-m", "bigsmall_jax.train", "--workdir", str(workdir), *tiny_overrides(data_dir, builder)]
    env = subprocess_env(BIGSMALL_CPU_PRESETS="0")  # the XLA flags of the in-process run above
    stop_env = {**env, "BIGSMALL_STOP_AFTER_STEPS": "7"}  # the test hook of the command line (Hooks)
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=stop_env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert not (workdir / "metrics.json").exists()
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 6  # checkpoints at 2, 4, end of epoch 0 (5), 6; step 7 is lost
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from step 6" in second.stderr

    _, variables = load_checkpoint(workdir)
    np.testing.assert_allclose(flat_params(variables["params"]), flat_params(uninterrupted.params),
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
    config = _tiny_config(data_dir, builder, "train.checkpoint_every_steps=3")
    with pytest.raises(TrainingDiverged, match=r"at step 7 .*last good checkpoint is step 6"):
        train_and_evaluate(config, tmp_path / "w", hooks=Hooks(nan_at_step=7))
    manager = checkpoint_manager(tmp_path / "w" / "checkpoints", 3)
    assert manager.latest_step() == 6
    mc = model_config(config)
    tx, _ = optim.optimizer_from_config(config.optim, 10)
    target = jax.device_get(create_train_state(build_model(mc), tx, 0))
    state, progress = restore_train_checkpoint(manager, target)
    assert int(state.step) == 6 and progress["epoch"] == 1
    assert np.all(np.isfinite(flat_params(state.params)))
    assert not (tmp_path / "w" / "metrics.json").exists()


def test_nan_stop_deletes_the_checkpoint_whose_loss_was_not_finite(tiny_synthetic_dataset, tmp_path):
    """Checkpoint 6 is saved before the loss of its parameters (step 6) is known; that loss is NaN, so it is
    deleted and checkpoint 5, every step up to it finite, is the one kept and named."""
    data_dir, builder = tiny_synthetic_dataset
    config = _tiny_config(data_dir, builder)  # checkpoints at 2, 4, 5 (end of epoch 0), 6
    with pytest.raises(TrainingDiverged, match=r"at step 6 .*last good checkpoint is step 5 "):
        train_and_evaluate(config, tmp_path / "w", hooks=Hooks(nan_at_step=6))
    manager = checkpoint_manager(tmp_path / "w" / "checkpoints", 3)
    assert manager.latest_step() == 5
    tx, _ = optim.optimizer_from_config(config.optim, 10)
    target = jax.device_get(create_train_state(build_model(model_config(config)), tx, 0))
    state, progress = restore_train_checkpoint(manager, target)
    assert int(state.step) == 5 and progress["finite_loss_step"] == 4
    stopped = train_and_evaluate(config, tmp_path / "ref", evaluate_test=False, hooks=Hooks(stop_after_steps=5))
    np.testing.assert_array_equal(flat_params(state.params), flat_params(stopped.params))


def test_huge_learning_rate_is_reported_by_the_cli(tiny_synthetic_dataset, tmp_path, capsys):
    data_dir, builder = tiny_synthetic_dataset
    argv = ["--workdir", str(tmp_path / "w"),
            *tiny_overrides(data_dir, builder, "optim.lr=1e30", "optim.schedule='constant'")]
    with pytest.raises(SystemExit) as exit_info:  # main() without its process-wide CPU presets
        cli_main(run)(argv)
    assert exit_info.value.code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "at step" in error[0] and "training stopped" in error[0]


def test_workdir_with_another_config_is_refused(tiny_synthetic_dataset, tmp_path):
    data_dir, builder = tiny_synthetic_dataset
    # Stopped before its first step: the workdir holds the run's config but no compiled step was needed.
    train_and_evaluate(_tiny_config(data_dir, builder), tmp_path / "w", hooks=Hooks(stop_after_steps=0))
    with pytest.raises(UserError, match=r"different config \(keys optim\.lr\)"):
        train_and_evaluate(_tiny_config(data_dir, builder, "optim.lr=0.5"), tmp_path / "w")


def test_workdir_written_with_the_removed_config_keys_resumes(tiny_synthetic_dataset, tmp_path):
    """A workdir whose config.json still holds the test hooks and process settings (once config keys) resumes."""
    data_dir, builder = tiny_synthetic_dataset
    workdir = tmp_path / "w"
    config = _tiny_config(data_dir, builder)
    train_and_evaluate(config, workdir, hooks=Hooks(stop_after_steps=0))
    saved = json.loads((workdir / "config.json").read_text())
    saved["train"].update(stop_after_steps=-1, debug_nan_step=-1)
    saved.update(multihost=False, coordinator_address="", num_processes=-1, process_id=-1)
    (workdir / "config.json").write_text(json.dumps(saved))
    result = train_and_evaluate(_tiny_config(data_dir, builder), workdir, hooks=Hooks(stop_after_steps=0))
    assert result.stopped_early and result.final_step == 0
    with pytest.raises(UserError, match=r"different config \(keys optim\.lr\)"):
        train_and_evaluate(_tiny_config(data_dir, builder, "optim.lr=0.5"), workdir, hooks=Hooks(stop_after_steps=0))



_HOLD_LOCK = """
import sys
from pathlib import Path
from bigsmall_jax.train.workdir_lock import WorkdirLock
lock = WorkdirLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def _lock_holder(workdir):
    """A subprocess holding the workdir lock (until its stdin closes or it is killed)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(workdir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=subprocess_env())
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_workdir_lock_refuses_a_second_holder_and_ignores_a_dead_ones(tmp_path):
    holder = _lock_holder(tmp_path)
    try:
        with pytest.raises(UserError) as refused:
            WorkdirLock(tmp_path).acquire()
        assert str(refused.value) == f"{tmp_path}: in use by another training run (pid {holder.pid})"
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(holder.pid)  # left behind by the killed run
    with WorkdirLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())


def test_second_trainer_on_a_locked_workdir_fails_at_once(tiny_synthetic_dataset, tmp_path):
    data_dir, builder = tiny_synthetic_dataset
    workdir = tmp_path / "w"
    workdir.mkdir()
    cmd = [sys.executable, "-m", "bigsmall_jax.train", "--workdir", str(workdir), *tiny_overrides(data_dir, builder)]
    with WorkdirLock(workdir):  # a first trainer, in this process
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert lines == [f"error: {workdir}: in use by another training run (pid {os.getpid()})"]
    assert not (workdir / "config.json").exists() and not (workdir / "checkpoints").exists()
