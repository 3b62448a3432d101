"""A training run: set-up, resume, the loop (checkpoints, logs, divergence stop), validation and the test.

`train_and_evaluate` is what ``python -m bigsmall_jax.train`` runs (see its ``--help`` for the workdir
layout). Every random draw is a function of (seed, step, clip) and the data order of (seed, epoch), so a
run resumed from its latest checkpoint continues exactly as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils
from tqdm import tqdm

from bigsmall_jax.datasets import tfds_builders
from bigsmall_jax.datasets.device_batch import device_big, pack_batch
from bigsmall_jax.datasets.input_pipeline import make_loader, restore_iterator
from bigsmall_jax.errors import UserError
from bigsmall_jax.evaluation import evaluate, plots
from bigsmall_jax.files import write_json_atomic
from bigsmall_jax.model import BigSmall, ModelConfig, build_model
from bigsmall_jax.train import losses as losses_lib
from bigsmall_jax.train import optim as optim_lib
from bigsmall_jax.train.checkpointing import (
    checkpoint_manager,
    export_model,
    import_params,
    restore_train_checkpoint,
    save_train_checkpoint,
)
from bigsmall_jax.train.config import config_to_json, validate_config
from bigsmall_jax.train.data import get_builder, make_epoch_loader, steps_per_epoch
from bigsmall_jax.train.logs import MetricsLog, plot_losses, tensorboard_writer
from bigsmall_jax.train.parallel import (
    AXIS,
    OneBehind,
    check_batch_divisible,
    prefetch_to_devices,
    replicate,
    unreplicate,
)
from bigsmall_jax.train.state import create_train_state
from bigsmall_jax.train.step import make_train_step
from bigsmall_jax.train.workdir import CONFIG_NAME, check_workdir, remove_leftovers
from bigsmall_jax.train.workdir_lock import WorkdirLock

log = logging.getLogger(__name__)


class TrainingDiverged(UserError):
    """The loss or the gradient became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class Hooks:
    """Hooks for tests and fault injection; not part of the experiment (a run's config never holds them).

    Attributes:
      stop_after_steps: stop (as if killed: nothing is saved) once this many steps are done; -1: never.
      nan_at_step: the loss of this step is multiplied by NaN (a divergence); -1: never.
    """

    stop_after_steps: int = -1
    nan_at_step: int = -1


@dataclasses.dataclass
class RunResult:
    """What `train_and_evaluate` returns.

    Attributes:
      workdir: the run directory.
      metrics: test metrics on process 0 (None on other processes, or when stopped early).
      final_step: optimizer steps done.
      params: host numpy params after the last step (every process).
      stopped_early: stopped by `Hooks.stop_after_steps` before the end.
    """

    workdir: Path
    metrics: dict | None
    final_step: int
    params: Any
    stopped_early: bool = False


@dataclasses.dataclass
class _Run:
    """Everything a training run needs, set up once (`_setup_run`)."""

    config: ml_collections.ConfigDict
    workdir: Path
    mc: ModelConfig
    model: BigSmall
    builder: Any
    train_source: Any
    val_source: Any
    steps_per_epoch: int
    total_steps: int
    local_batch: int
    tx: optax.GradientTransformation
    p_train_step: Any
    weights: dict[str, float]
    pos_weight: tuple[float, ...] | None
    manager: Any
    primary: bool
    lock: WorkdirLock | None  # process 0's lock on the workdir, released when the run returns


# ----------------------------------------------------------------------------------------------------------
# Set-up and resume.


def _open_data(config: ml_collections.ConfigDict, mc: ModelConfig) -> tuple[Any, Any, Any]:
    """(builder, train source, validation source or None); builds the dataset when missing."""
    builder = get_builder(config)
    train_source = tfds_builders.data_source(builder, config.dataset.train_split)
    val_source = tfds_builders.data_source(builder, config.dataset.val_split) if config.dataset.val_split else None
    if builder.builder_config.n_segment != mc.n_segment:
        raise UserError(f"dataset {builder.name}/{builder.builder_config.name} has clips of "
                        f"{builder.builder_config.n_segment} frames but model.n_segment={mc.n_segment}; set "
                        f"dataset.settings.n_segment={mc.n_segment}")
    return builder, train_source, val_source


def _setup_run(config: ml_collections.ConfigDict, workdir: Path, hooks: Hooks) -> _Run:
    """Validates, builds or opens the dataset, makes the step; the workdir is created only once all is well."""
    mc = validate_config(config)
    model = build_model(mc)
    n_proc = jax.process_count()
    batch_clips = int(config.train.batch_clips)
    check_batch_divisible(batch_clips, jax.device_count(), n_proc)
    config_json = config_to_json(config)
    check_workdir(workdir, config_json)  # before any work: a workdir this run may not write
    builder, train_source, val_source = _open_data(config, mc)  # a bad dataset fails before anything is written
    n_steps = steps_per_epoch(len(train_source), config, n_proc)
    total_steps = n_steps * int(config.train.num_epochs)
    tx, schedule = optim_lib.optimizer_from_config(config.optim, total_steps)
    weights = {"au": float(config.loss.au_weight), "bvp": float(config.loss.bvp_weight),
               "resp": float(config.loss.resp_weight)}
    pos_weight = tuple(float(x) for x in config.loss.au_pos_weight) or None
    starts = {t: int(round(float(config.loss[f"{t}_start"]) * total_steps)) for t in losses_lib.TASKS}
    step_fn = make_train_step(model, schedule, seed=int(config.seed), task_weights=weights, au_pos_weight=pos_weight,
                              pcgrad=bool(config.loss.pcgrad), per_clip_dropout=bool(config.train.per_clip_dropout),
                              task_start_steps=starts, hflip=bool(config.train.hflip),
                              nan_at_step=hooks.nan_at_step)
    primary = jax.process_index() == 0
    workdir.mkdir(parents=True, exist_ok=True)
    lock = WorkdirLock(workdir).acquire() if primary else None  # a second trainer on this workdir stops here
    try:
        if primary:
            remove_leftovers(workdir)
            write_json_atomic(workdir / CONFIG_NAME, config_json)
        log.info("%s/%s: %d train clips, %d steps/epoch x %d epochs, %d clips/step on %d devices (%d processes)",
                 builder.name, builder.builder_config.name, len(train_source), n_steps, int(config.train.num_epochs),
                 batch_clips, jax.device_count(), n_proc)
        return _Run(config=config, workdir=workdir, mc=mc, model=model, builder=builder, train_source=train_source,
                    val_source=val_source, steps_per_epoch=n_steps, total_steps=total_steps,
                    local_batch=batch_clips // n_proc, tx=tx,
                    p_train_step=jax.pmap(step_fn, axis_name=AXIS, donate_argnums=(0,)), weights=weights,
                    pos_weight=pos_weight, primary=primary, lock=lock,
                    manager=checkpoint_manager(workdir / "checkpoints", int(config.train.keep_checkpoints)))
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _restore_or_init(run: _Run) -> tuple[Any, dict[str, Any], str | None]:
    """(replicated train state, progress, this process's iterator state or None), from the latest checkpoint
    of the workdir if there is one, else fresh."""
    host_state = jax.device_get(create_train_state(run.model, run.tx, int(run.config.seed),
                                                   init=str(run.config.train.init)))
    progress: dict[str, Any] = {"epoch": 0, "best_val": None, "best_epoch": None, "best_step": None}
    iterator_state = None
    restored = restore_train_checkpoint(run.manager, host_state)
    if restored is not None:
        host_state, progress = restored
        iterator_state = progress.pop("iterator_states")[jax.process_index()] or None
        log.info("resuming from step %d (epoch %d) in %s", int(host_state.step), progress["epoch"], run.workdir)
    return replicate(host_state), progress, iterator_state


def _epoch_iterator(run: _Run, epoch: int, iterator_state: str | None):
    """The epoch's batches, from the saved position of a resumed epoch or from its start."""
    loader = make_epoch_loader(run.train_source, run.config, epoch, run.local_batch,
                               big_first_only=run.model.big_per_clip)
    return restore_iterator(loader, iterator_state.encode()) if iterator_state else iter(loader)


# ----------------------------------------------------------------------------------------------------------
# The loop.


def _is_finite_tree(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree))


class _LoopRecorder:
    """The loop's logging and saving state: metrics.jsonl, TensorBoard, the progress bar, the throughput
    window, the last saved step (named when training diverges) and the last step whose loss was finite.

    A step's loss is computed from the parameters after that many updates, so it is known one step later:
    checkpoint N is saved once the losses of steps 0..N-1 were fetched and finite (its progress JSON records
    ``finite_loss_step`` N-1), and proven good only when the loss of step N is finite too. On divergence the
    checkpoints after the last step known finite are deleted, so the latest one kept is a good one.
    """

    def __init__(self, run: _Run, step: int):
        self.run = run
        self.workdir = run.workdir
        self.log_every = max(1, int(run.config.train.log_every_steps))
        self.metrics_log = MetricsLog(run.workdir / "metrics.jsonl", run.primary, step)
        self.tb = tensorboard_writer(run.workdir / "tensorboard") if run.primary else None
        self.bar = tqdm(total=run.total_steps, initial=step, desc="train", unit="step", disable=not run.primary,
                        dynamic_ncols=True)
        self.last_saved = run.manager.latest_step()
        self.finite_step = step - 1  # the loss of the parameters after this many updates was finite
        self.window_start, self.window_clips = time.perf_counter(), 0

    def _kept(self) -> str:
        if self.last_saved is None:
            return "there is no checkpoint yet"
        return f"the last good checkpoint is step {self.last_saved} in {self.workdir / 'checkpoints'}"

    def save(self, state, progress: Mapping[str, Any], epoch: int, it_state: bytes | None) -> None:
        """A train checkpoint at the state's step (refused, with `TrainingDiverged`, when params are not finite)."""
        host = unreplicate(state)
        if not _is_finite_tree(host.params):
            raise TrainingDiverged(f"parameters are not finite at step {int(host.step)}; not saved ({self._kept()})")
        payload = {**progress, "epoch": epoch, "finite_loss_step": self.finite_step}
        save_train_checkpoint(self.run.manager, host, payload, it_state)
        self.last_saved = int(host.step)

    def _drop_checkpoints_after(self, last_finite: int) -> None:
        """Deletes the checkpoints after step `last_finite` (the last whose loss is known finite): their
        parameters gave a non-finite loss, or led to one."""
        manager = self.run.manager
        for step in manager.all_steps():
            if step > last_finite:
                log.warning("deleting checkpoint %d: the loss of its parameters is not finite", step)
                manager.delete(step)
        self.last_saved = manager.latest_step()

    def record(self, done: int, epoch: int, epoch_end: int, device_metrics) -> None:
        """Fetches the metrics of the step that made `done` updates; stops on a non-finite loss; logs."""
        metrics = {k: float(v[0]) for k, v in jax.device_get(device_metrics).items()}
        if not (math.isfinite(metrics["loss"]) and math.isfinite(metrics["grad_norm"])):
            self._drop_checkpoints_after(done - 2)
            raise TrainingDiverged(
                f"loss {metrics['loss']} / gradient norm {metrics['grad_norm']} at step {done - 1} (epoch "
                f"{epoch}; the parameters after {done - 1} updates): training stopped, {self._kept()} (try a lower "
                "optim.lr, or optim.clip_norm)")
        self.finite_step = done - 1
        self.window_clips += int(self.run.config.train.batch_clips)
        rec = {"step": done, "epoch": epoch, **{f"train_{k}": v for k, v in metrics.items()}}
        if done % self.log_every == 0 or done == epoch_end:
            rec["clips_per_s"] = self.window_clips / max(time.perf_counter() - self.window_start, 1e-9)
            self.window_start, self.window_clips = time.perf_counter(), 0
            self.bar.set_postfix({k.removeprefix("loss_"): f"{v:.4g}" for k, v in metrics.items()
                                  if k.startswith("loss")} | {"clips/s": f"{rec['clips_per_s']:.1f}"})
            if self.tb is not None:
                for k, v in rec.items():
                    self.tb.add_scalar(k, v, done)
        self.metrics_log.write(rec)
        self.bar.update(1)

    def close(self) -> None:
        """Closes the bar and TensorBoard; plots the loss curves (process 0)."""
        self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.run.primary and self.metrics_log.records:
            try:
                plot_losses(self.metrics_log.records, self.workdir / "loss_curves.png")
            except UserError as e:
                log.warning("no loss plot: %s", e)


def _train_epoch(run: _Run, recorder: _LoopRecorder, state, progress: dict[str, Any], epoch: int, step: int,
                 iterator_state: str | None, hooks: Hooks):
    """One epoch's steps from `step` (mid-epoch checkpoints included); returns (state, step, stopped_early).

    Each step's metrics are fetched after the next step is dispatched (`OneBehind`), so the device never
    waits for the host to read and shard the next batch; they are flushed before every checkpoint, at the
    end of the epoch and before stopping.
    """
    ckpt_every = int(run.config.train.checkpoint_every_steps)
    behind = OneBehind(recorder.record)
    epoch_end = (epoch + 1) * run.steps_per_epoch
    # The next batches are copied to the devices while the current step runs; each comes with the loader
    # position to checkpoint once it has been trained on.
    batches = prefetch_to_devices(_epoch_iterator(run, epoch, iterator_state), run.mc.n_segment, pack=pack_batch)
    while step < epoch_end:
        if 0 <= hooks.stop_after_steps <= step:
            behind.flush()
            log.info("stopping after step %d (Hooks.stop_after_steps), as if killed", step)
            return state, step, True
        try:
            batch, position = next(batches)
        except StopIteration:
            raise UserError(f"the training loader ran out after step {step} of epoch {epoch}") from None
        state, metrics = run.p_train_step(state, batch)
        step += 1
        behind.push(step, epoch, epoch_end, metrics)  # fetches the previous step's, while this one runs
        if step < epoch_end and ckpt_every > 0 and step % ckpt_every == 0:
            behind.flush()
            recorder.save(state, progress, epoch, position)
    behind.flush()
    return state, step, False


def _train(run: _Run, state, progress: dict[str, Any], iterator_state: str | None, hooks: Hooks):
    """The training loop from wherever `state` is; returns (state, stopped_early)."""
    step = int(jax.device_get(state.step)[0])
    recorder = _LoopRecorder(run, step)
    try:
        for epoch in range(int(progress["epoch"]), int(run.config.train.num_epochs)):
            state, step, stopped = _train_epoch(run, recorder, state, progress, epoch, step, iterator_state, hooks)
            if stopped:
                return state, True
            iterator_state = None
            if run.val_source is not None:
                _validate(run, state, progress, epoch, step, recorder.metrics_log)
            recorder.save(state, progress, epoch + 1, None)
    finally:
        recorder.close()
    return state, False


# ----------------------------------------------------------------------------------------------------------
# Validation, test, the whole run.


def _validate(run: _Run, state, progress: dict[str, Any], epoch: int, step: int, metrics_log: MetricsLog) -> None:
    """Validation loss of an epoch; with ``train.select="best"`` keeps the best epoch's model in WORKDIR/best."""
    val = validation_losses(run.model, state, run.val_source, run.config, run.weights, run.pos_weight)
    metrics_log.write({"step": step, "epoch": epoch, **{f"val_{k}": v for k, v in val.items()}})
    log.info("epoch %d: validation loss %.5f", epoch, val["loss"])
    if run.config.train.select == "best" and (progress["best_val"] is None or val["loss"] < progress["best_val"]):
        progress.update(best_val=float(val["loss"]), best_epoch=epoch, best_step=step)
        if run.primary:
            export_model(run.workdir / "best", run.mc, {"params": unreplicate(state).params},
                         {"epoch": epoch, "step": step, "val_loss": float(val["loss"])})


def _test(run: _Run, final_params, progress: Mapping[str, Any], step: int) -> dict:
    """Scores the chosen epoch on the test split; writes WORKDIR/model and WORKDIR/metrics.json."""
    config = run.config
    if config.train.select == "best":
        variables = import_params(run.workdir / "best", run.mc)
        chosen = {"select": "best", "epoch": progress["best_epoch"], "step": progress["best_step"]}
    else:
        variables = {"params": final_params}
        chosen = {"select": "last", "epoch": int(config.train.num_epochs) - 1, "step": step}
    results = test_model(run.model, variables, run.builder, config, run.workdir)
    info = {"dataset": f"{run.builder.name}/{run.builder.builder_config.name}", "split": config.dataset.test_split,
            "tested": chosen, "steps": step, "epochs": int(config.train.num_epochs),
            "batch_clips": int(config.train.batch_clips), "devices": jax.device_count(),
            "processes": jax.process_count()}
    results = {**results, "run": info}
    summary = {k: results.get(k) for k in ("hr_mae", "rr_mae", "au_f1_mean")}
    export_model(run.workdir / "model", run.mc, variables, {**info, "test": summary})
    write_json_atomic(run.workdir / "metrics.json", results)
    return results


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       evaluate_test: bool = True, hooks: Hooks = Hooks()) -> RunResult:
    """Trains per `config` in `workdir` (resuming from its latest checkpoint), then tests the chosen epoch.

    Every process of a multihost run calls it; process 0 writes the workdir files (see
    ``python -m bigsmall_jax.train --help``) and scores the test split.

    Args:
      config: a validated-or-not training config (`bigsmall_jax.train.config`).
      workdir: the run directory.
      evaluate_test: score the test split and export the model after training.
      hooks: test / fault-injection hooks (`Hooks`); the default has none.
    Raises:
      UserError: bad config, dataset or workdir (one in use by another run: `WorkdirLock`); `TrainingDiverged`
        when the loss becomes NaN/inf.
    """
    run = _setup_run(config, Path(workdir).absolute(), hooks)
    try:
        state, progress, iterator_state = _restore_or_init(run)
        state, stopped = _train(run, state, progress, iterator_state, hooks)
        run.manager.wait_until_finished()
        final = unreplicate(state)
        step = int(final.step)
        results = None
        if not stopped and evaluate_test and run.primary:
            results = _test(run, final.params, progress, step)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("bigsmall_train_done")
    finally:
        run.manager.close()  # its threads end before the interpreter does, even after an error
        if run.lock is not None:
            run.lock.release()
    return RunResult(run.workdir, results, step, final.params, stopped)


def validation_losses(model: BigSmall, state, source, config, weights: Mapping[str, float],
                      pos_weight) -> dict[str, float]:
    """Eval-mode loss means over a whole split: {"loss": weighted total, "loss_<task>": mean per task}.

    Each process reads its shard (every record once over all processes) and runs the model on one local
    device, without collectives in the loop (shards may differ by one batch); the (sum, count) pairs are
    added over processes at the end. Batches are zero-padded to a fixed size (masked out) so the eval
    function compiles once.
    """
    t = model.config.n_segment
    per_batch = max(1, int(config.train.eval_batch_clips))
    eval_fn = _eval_sums_fn(model, pos_weight)
    loader = make_loader(source, batch_clips=per_batch, shuffle=False, seed=0, num_epochs=1,
                         drop_remainder=False, shard_by_process=True)
    totals: dict[str, np.ndarray] = {}
    n_batches = math.ceil(len(source) / jax.process_count() / per_batch)
    params = unreplicate(state).params
    for batch in tqdm(loader, total=n_batches, desc="validation", leave=False, disable=jax.process_index() != 0):
        batch = pad_batch(batch, per_batch * t)
        for task, (s, c) in jax.device_get(eval_fn(params, batch)).items():
            totals[task] = totals.get(task, np.zeros(2)) + np.array([float(s), float(c)])
    keys = sorted(totals)
    arr = np.array([totals[k] for k in keys], np.float64).reshape(len(keys), 2)
    if jax.process_count() > 1:  # every process saw a different shard: add them up
        arr = np.asarray(multihost_utils.process_allgather(arr)).sum(axis=0)
    per_task = {k: float(arr[i, 0] / arr[i, 1]) if arr[i, 1] else float("nan") for i, k in enumerate(keys)}
    out = {"loss": sum(float(weights.get(k, 1.0)) * v for k, v in per_task.items())}
    out.update({f"loss_{k}": v for k, v in per_task.items()})
    return out


def pad_batch(batch: Mapping[str, np.ndarray], frames: int) -> dict[str, np.ndarray]:
    """Zero-pads every (N, ...) array of a batch to (frames, ...); padded frames have every mask 0."""
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        if v.shape[0] > frames:
            raise ValueError(f"batch of {v.shape[0]} frames exceeds {frames}")
        fill = np.zeros((frames - v.shape[0], *v.shape[1:]), v.dtype)
        out[k] = np.concatenate([v, fill]) if fill.shape[0] else v
    if "frame_mask" not in out:
        n = next(iter(batch.values())).shape[0]
        out["frame_mask"] = (np.arange(frames) < n).astype(np.float32)
    return out


@functools.lru_cache(maxsize=4)
def _eval_sums_fn(model: BigSmall, pos_weight):
    """Jitted eval-mode ``(params, batch) -> {task: (loss sum, valid count)}`` on one device."""
    pw = None if pos_weight is None else jnp.asarray(pos_weight, jnp.float32)

    def sums(params, batch):
        out = model.apply({"params": params}, device_big(batch), batch["small"], train=False)
        return losses_lib.task_sums(out, batch, pw)

    return jax.jit(sums)


def test_model(model: BigSmall, variables, builder, config, out_dir: Path | None) -> dict:
    """Scores a model on the config's test split (`evaluation.evaluate.evaluate_split`); plots into out_dir."""
    source = tfds_builders.data_source(builder, config.dataset.test_split)
    results, predictions = evaluate.evaluate_split(model, variables, source,
                                                   batch_clips=int(config.train.eval_batch_clips),
                                                   progress=jax.process_index() == 0 and None)
    if out_dir is not None:
        try:
            plots.save_plots(results, predictions, out_dir, "test")
        except UserError as e:
            log.warning("no test plots: %s", e)
    return results
