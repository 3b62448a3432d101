"""Train BigSmall (or a single-task baseline) data-parallel over every device JAX sees, then test it.

    python -m bigsmall_jax.train [--config configs/NAME.py | NAME] [--workdir DIR] [key=value ...]

With no arguments it trains the paper's BigSmall on the embedded synthetic dataset (built on first use
into ``$BIGSMALL_DATA_DIR`` or ``~/.cache/bigsmall_jax/data``) in ``runs/<config name>``, tests the last
epoch on held-out synthetic subjects and prints the test metrics as JSON. ``key=value`` overrides any
config value (dotted keys, Python literals: ``optim.lr=3e-4 model.big_filters=(16,16,16,32,32,32)``).

What a workdir holds::

    config.json       the resolved config (a resumed run must use the same one)
    checkpoints/      orbax: train state + input position + progress, every epoch and every N steps
    metrics.jsonl     one JSON line per step (losses, grad norm, lr, clips/s) and per validation
    loss_curves.png   the losses per task over steps
    best/             the best validation epoch's model (train.select="best" only)
    model/            the tested model (`bigsmall_jax.checkpoints.load_checkpoint(WORKDIR)` loads it)
    metrics.json      the test metrics (`bigsmall_jax.evaluation.metrics.evaluate_videos`) + run information
    test_*.png        evaluation plots (`bigsmall_jax.evaluate.save_plots`)

The step (`make_train_step`) is one `jax.pmap` over the local devices of every process
(``axis_name="batch"``): the train state is replicated, each device gets a contiguous share of whole
clips of the global batch, task losses are exact global means (per-device sums and valid-label counts
are added with ``lax.psum`` before dividing, so missing labels spread unevenly over devices do not bias
them), gradients are added over devices the same way. Dropout randomness is drawn per clip from
(seed, step, global clip index) (``train.per_clip_dropout``), so a run gives the same numbers on 1 or N
devices up to float summation order.

The loss (`bigsmall_jax.train.losses`) is ``loss.au_weight * BCE(pos_weight) + loss.bvp_weight * MSE +
loss.resp_weight * MSE`` over valid labels; ``loss.<task>_start`` (a fraction of the steps) switches a task
on later (a curriculum), ``loss.pcgrad`` combines task gradients with PCGrad. AdamW and its schedule are
in `bigsmall_jax.train.optim`; ``train.init`` draws the initial weights like Flax or like PyTorch (the paper).

Resuming: run the same command again with the same workdir. The latest checkpoint (params, AdamW
state, step, the grain iterator position within the current epoch) is restored and training continues
exactly as if it had never stopped: every random draw is a function of (seed, step, clip) and the data
order a function of (seed, epoch).

On a CPU the command line first applies `bigsmall_jax.runtime.configure_cpu_runtime` (XLA:CPU fusion
flags and a malloc setting measured to make the train step about 2x faster; GPU/TPU programs are
unaffected); ``BIGSMALL_CPU_PRESETS=0`` keeps XLA's defaults.

Multihost (``--multihost``): `jax.distributed.initialize` with ``--coordinator-address``,
``--num-processes``, ``--process-id`` (or ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
``JAX_PROCESS_ID``, or the cluster's own environment, e.g. on Cloud TPU). Every process runs the same
command; each reads its own shard of the training data and feeds its local devices; pmap spans all.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import importlib.util
import json
import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from tqdm import tqdm

from bigsmall_jax.errors import UserError, cli_main, file_error
from bigsmall_jax.files import json_default, write_json_atomic
from bigsmall_jax.model import BigSmall, ModelConfig, build_model, init_variables
from bigsmall_jax.train import losses as losses_lib
from bigsmall_jax.train import optim as optim_lib

log = logging.getLogger(__name__)

AXIS = "batch"
# The repository's configs/ (a checkout or an editable install), else the copy a wheel installs.
_REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
_PACKAGED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CONFIGS_DIR = _REPO_CONFIGS if (_REPO_CONFIGS / "common.py").is_file() else _PACKAGED_CONFIGS
DEFAULT_CONFIG = "synthetic"
DATA_DIR_ENV = "BIGSMALL_DATA_DIR"
DEFAULT_DATA_DIR = "~/.cache/bigsmall_jax/data"
CPU_PRESETS_ENV = "BIGSMALL_CPU_PRESETS"  # "0": the command line keeps XLA's defaults (see `run`)
# Config keys that may differ between a run and its resumption (they do not change the numbers).
RESUME_FREE_KEYS = (
    "train.stop_after_steps", "train.debug_nan_step", "train.log_every_steps", "train.checkpoint_every_steps",
    "train.keep_checkpoints", "train.eval_batch_clips", "dataset.data_dir", "dataset.source_dir",
    "multihost", "coordinator_address", "num_processes", "process_id",
)


class TrainingDiverged(UserError):
    """The loss or the gradient became NaN or infinite."""


# ----------------------------------------------------------------------------------------------------------
# Configs: loading, overrides, validation.


def _config_path(spec: str | None) -> Path:
    """The file of a config given as a path (``configs/x.py``) or a name (``x``) of ``configs/``."""
    spec = spec or DEFAULT_CONFIG
    path = Path(spec)
    if path.suffix != ".py" and os.sep not in spec and "/" not in spec:
        path = CONFIGS_DIR / f"{spec}.py"
    if not path.is_file():
        names = sorted(p.stem for p in CONFIGS_DIR.glob("*.py") if not p.stem.startswith("_")
                       and p.stem != "common") if CONFIGS_DIR.is_dir() else []
        raise file_error(path, f"no such config file; named configs in {CONFIGS_DIR}: {', '.join(names) or 'none'}")
    return path.resolve()


def load_config(spec: str | None = None) -> ml_collections.ConfigDict:
    """Runs ``get_config()`` of a config file (path or name of ``configs/``; None: the default).

    The file's package (e.g. ``configs``) is made importable, so configs can share a module.
    """
    path = _config_path(spec)
    root = str(path.parent.parent)
    if path.parent == _PACKAGED_CONFIGS:  # installed from a wheel: `from configs import common` is this package
        sys.modules.setdefault("configs", importlib.import_module("bigsmall_jax.configs"))
    elif (path.parent / "__init__.py").is_file() and root not in sys.path:
        sys.path.insert(0, root)
    module_spec = importlib.util.spec_from_file_location(f"_bigsmall_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except UserError:
        raise
    except Exception as e:  # a broken config file: name it
        raise file_error(path, f"cannot load the config: {type(e).__name__}: {e}") from None
    if not hasattr(module, "get_config"):
        raise file_error(path, "a config file must define get_config()")
    config = module.get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        raise file_error(path, f"get_config() returned {type(config).__name__}, not an ml_collections.ConfigDict")
    return config


def flat_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Every dotted leaf key of a config, e.g. ``["model.n_segment", "optim.lr", ...]``."""
    keys = []
    for k, v in config.items():
        if isinstance(v, ml_collections.ConfigDict) and (len(v) or k != "settings"):
            keys.extend(flat_keys(v, f"{prefix}{k}."))
        else:
            keys.append(f"{prefix}{k}")
    return sorted(keys)


def parse_value(text: str) -> Any:
    """A Python literal (``3``, ``1e-3``, ``(4, 8)``, ``True``, ``'x'``), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> ml_collections.ConfigDict:
    """Applies ``dotted.key=value`` overrides in place (and returns the config).

    New keys are refused (`UserError` listing the valid ones), except under ``dataset.settings``, whose
    keys the dataset builder checks itself.
    """
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        value = parse_value(text)
        parts = key.split(".")
        node = config
        for i, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
            if not isinstance(child, ml_collections.ConfigDict):
                raise UserError(f"unknown config key {key!r}; valid keys: {', '.join(flat_keys(config))}")
            node = child
            if ".".join(parts[: i + 1]) == "dataset.settings":
                break
        leaf = parts[-1]
        free = key.startswith("dataset.settings.") and len(parts) == 3
        if leaf not in node and not free:
            raise UserError(f"unknown config key {key!r}; valid keys: {', '.join(flat_keys(config))}")
        current = node.get(leaf)
        if isinstance(current, ml_collections.ConfigDict) and not (key == "dataset.settings"):
            raise UserError(f"config key {key!r} is a section; set its keys: "
                            f"{', '.join(k for k in flat_keys(config) if k.startswith(key + '.'))}")
        if isinstance(current, tuple) and isinstance(value, list | int | float) and not isinstance(value, bool):
            value = tuple(value) if isinstance(value, list) else (value,)
        try:
            node[leaf] = value
        except (TypeError, ValueError) as e:
            raise UserError(f"config key {key!r}: cannot set {value!r}: {e}") from None
    return config


def model_config(config: ml_collections.ConfigDict) -> ModelConfig:
    """The `ModelConfig` of a training config's ``model`` section."""
    return ModelConfig.from_dict(config.model.to_dict(), source="config model")


def validate_config(config: ml_collections.ConfigDict) -> ModelConfig:
    """Checks a training config; returns its model config. Raises `UserError` naming the bad key."""
    mc = model_config(config)
    t = config.train
    if t.init not in INITS:
        raise UserError(f"train.init must be one of {INITS}, got {t.init!r}")
    if t.select not in ("last", "best"):
        raise UserError(f"train.select must be 'last' or 'best', got {t.select!r}")
    if t.select == "best" and not config.dataset.val_split:
        raise UserError("train.select='best' needs a validation split (dataset.val_split)")
    if int(t.batch_clips) < 1 or int(t.num_epochs) < 1:
        raise UserError(f"train.batch_clips and train.num_epochs must be >= 1, got {t.batch_clips}, {t.num_epochs}")
    if config.optim.schedule not in optim_lib.SCHEDULES:
        raise UserError(f"optim.schedule {config.optim.schedule!r} is not one of {optim_lib.SCHEDULES}")
    for name in ("lr", "b1", "b2", "eps", "weight_decay"):
        if not math.isfinite(float(config.optim[name])) or float(config.optim[name]) < 0:
            raise UserError(f"optim.{name} must be a finite number >= 0, got {config.optim[name]!r}")
    for task in losses_lib.TASKS:
        start = float(config.loss[f"{task}_start"])
        if not 0.0 <= start < 1.0:
            raise UserError(f"loss.{task}_start must be a fraction of the training steps in [0, 1), got {start}")
    pw = tuple(config.loss.au_pos_weight)
    if pw and mc.n_au and len(pw) != mc.n_au:
        raise UserError(f"loss.au_pos_weight has {len(pw)} values but the model has {mc.n_au} AUs")
    if not 0 <= int(config.seed) < 2**31:
        raise UserError(f"seed must be in [0, 2**31), got {config.seed}")
    return mc


def config_to_json(config: ml_collections.ConfigDict) -> dict:
    """A JSON-able dict of the config (tuples as lists)."""
    return json.loads(json.dumps(config.to_dict(), default=list))


def _flat_dict(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            out.update(_flat_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(saved: Mapping, current: Mapping) -> list[str]:
    """Keys (other than `RESUME_FREE_KEYS`) whose values differ between two config JSON dicts."""
    a, b = _flat_dict(saved), _flat_dict(current)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in RESUME_FREE_KEYS)


# ----------------------------------------------------------------------------------------------------------
# The train state and the step.


class TrainState(train_state.TrainState):
    """flax's TrainState (step, params, opt_state; apply_fn and tx static)."""


INITS = ("flax", "torch")


def torch_style_init(params, key: jax.Array):
    """Re-draws every conv / dense layer as PyTorch's default init does (what the paper trained from).

    PyTorch's ``Conv2d`` / ``Linear`` draw weights from kaiming_uniform(a=sqrt(5)) and biases alike, both
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = kh*kw*in_channels (conv) or in_features (dense).
    Flax's defaults (lecun_normal weights, zero biases) give weights sqrt(3) times larger and no biases.

    Args:
      params: a params pytree of `BigSmall` (leaves ``kernel`` (kh, kw, in, out) / (in, out) and ``bias``).
      key: PRNG key.
    Returns:
      A pytree of the same structure and shapes, float32.
    """
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    kernels = {tuple(str(getattr(k, "key", k)) for k in path[:-1]): leaf for path, leaf in flat
               if str(getattr(path[-1], "key", path[-1])) == "kernel"}
    out = []
    for i, (path, leaf) in enumerate(flat):
        layer = tuple(str(getattr(k, "key", k)) for k in path[:-1])
        kernel = kernels[layer]
        fan_in = int(np.prod(kernel.shape[:-1]))
        bound = 1.0 / math.sqrt(fan_in)
        out.append(jax.random.uniform(jax.random.fold_in(key, i), leaf.shape, jnp.float32, -bound, bound))
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), out)


def create_train_state(model: BigSmall, tx: optax.GradientTransformation, seed: int,
                       params=None, init: str = "flax") -> TrainState:
    """A fresh train state.

    Args:
      model, tx: the module and the optimizer.
      seed: params are drawn with key ``fold_in(PRNGKey(seed), 0)``.
      params: start from these instead (e.g. converted PyTorch weights).
      init: ``"flax"`` (Flax's default initializers) or ``"torch"`` (`torch_style_init`, PyTorch's defaults).
    """
    if params is None:
        key = jax.random.fold_in(jax.random.PRNGKey(seed), 0)
        params = init_variables(model, key)["params"]
        if init == "torch":
            params = torch_style_init(params, jax.random.fold_in(key, 1))
        elif init != "flax":
            raise UserError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def _apply_per_clip(model: BigSmall, params, big, small, keys):
    """Training-mode outputs with one dropout key per clip: (N*T, ...) inputs, keys (N,)."""
    t = model.config.n_segment
    n = big.shape[0] // t

    def one(b, s, k):
        return model.apply({"params": params}, b, s, train=True, rngs={"dropout": k})

    out = jax.vmap(one)(big.reshape(n, t, *big.shape[1:]), small.reshape(n, t, *small.shape[1:]), keys)
    return {k: v.reshape(n * t, *v.shape[2:]) for k, v in out.items()}


def make_train_step(model: BigSmall, schedule: optax.Schedule, *, seed: int, task_weights: Mapping[str, float],
                    au_pos_weight=None, pcgrad: bool = False, per_clip_dropout: bool = True,
                    task_start_steps: Mapping[str, int] | None = None, debug_nan_step: int = -1,
                    axis_name: str = AXIS):
    """The per-device training step, to be wrapped in ``jax.pmap(..., axis_name=axis_name)``.

    Args:
      model: the module; ``model.apply`` runs it.
      schedule: learning rate per step (only logged; the optimizer in the state has its own copy).
      seed: randomness of step s and clip c is ``fold_in(fold_in(PRNGKey(seed), s + 1), c)``.
      task_weights: {"au", "bvp", "resp": weight} of the total loss.
      au_pos_weight: (n_au,) BCE positive weights, or None.
      pcgrad: combine task gradients with PCGrad (`bigsmall_jax.train.optim.pcgrad`) instead of summing.
      per_clip_dropout: dropout keys per global clip index (device-count invariant) rather than per device.
      task_start_steps: {task: step}: the task's loss has weight 0 before that step (a curriculum; default:
        every task from step 0). Its loss is still computed and logged.
      debug_nan_step: tests only; the loss of that step is multiplied by NaN.

    Returns:
      ``step(state, batch) -> (state, metrics)``. ``batch`` holds this device's frames: "big"
      (n*T, 144, 144, 3), "small" (n*T, 9, 9, 3), labels "au" (n*T, 12), "bvp", "resp" (n*T,), optional masks
      "au_mask", "bvp_mask", "resp_mask", "frame_mask". ``metrics``: global "loss" (weighted total, with the
      weights of this step), "loss_<task>" (unweighted means), "grad_norm", "lr", identical on every device.
    """
    base_key = jax.random.PRNGKey(seed)
    t = model.config.n_segment
    pos_weight = None if au_pos_weight is None or len(au_pos_weight) == 0 else jnp.asarray(au_pos_weight, jnp.float32)
    heads = [h for h, _ in model.config.heads]
    base_weights = {h: float(task_weights.get(h, 1.0)) for h in heads}
    starts = {h: int((task_start_steps or {}).get(h, 0)) for h in heads}

    def step(state: TrainState, batch: Mapping[str, jax.Array]):
        weights = {h: base_weights[h] * (state.step >= starts[h]) if starts[h] > 0 else base_weights[h]
                   for h in heads}
        step_key = jax.random.fold_in(base_key, state.step + 1)
        n_clips = batch["big"].shape[0] // t
        first_clip = jax.lax.axis_index(axis_name) * n_clips
        if per_clip_dropout:
            keys = jax.vmap(jax.random.fold_in, (None, 0))(step_key, first_clip + jnp.arange(n_clips))
        else:
            device_key = jax.random.fold_in(step_key, jax.lax.axis_index(axis_name))
        nan_factor = jnp.where(state.step == debug_nan_step, jnp.nan, 1.0)

        def task_losses(params):
            if per_clip_dropout:
                out = _apply_per_clip(model, params, batch["big"], batch["small"], keys)
            else:
                out = model.apply({"params": params}, batch["big"], batch["small"], train=True,
                                  rngs={"dropout": device_key})
            sums = losses_lib.task_sums(out, batch, pos_weight)
            # Each device's share of the global mean: its sum over the global count of valid labels.
            return {h: nan_factor * s / jnp.maximum(jax.lax.psum(c, axis_name), 1.0) for h, (s, c) in sums.items()}

        if pcgrad and len(heads) > 1:
            local, vjp_fn = jax.vjp(task_losses, state.params)
            task_grads = []
            for h in heads:
                cot = {k: jnp.asarray(weights[h] if k == h else 0.0, jnp.float32) for k in local}
                task_grads.append(jax.lax.psum(vjp_fn(cot)[0], axis_name))
            grads = optim_lib.pcgrad(task_grads, jax.random.fold_in(step_key, 2**31 - 1))
        else:
            def total(params):
                per_task = task_losses(params)
                return losses_lib.weighted_total(per_task, weights), per_task

            (_, local), grads = jax.value_and_grad(total, has_aux=True)(state.params)
            grads = jax.lax.psum(grads, axis_name)
        per_task = jax.lax.psum(local, axis_name)
        metrics = {"loss": losses_lib.weighted_total(per_task, weights),
                   **{f"loss_{h}": v for h, v in per_task.items()},
                   "grad_norm": optax.tree.norm(grads),
                   "lr": jnp.asarray(schedule(state.step), jnp.float32)}
        return state.apply_gradients(grads=grads), metrics

    return step


# ----------------------------------------------------------------------------------------------------------
# Devices: replication and batch sharding.


def put_sharded(tree, devices: Sequence | None = None):
    """Host arrays with a leading axis of one slice per device -> device arrays, slice d on device d.

    The placement (a sharding over the leading axis) is the one pmap gives its outputs, so a pmapped step
    compiles once for the arrays it is first given and for those it returns.
    """
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = list(devices or jax.local_devices())
    sharding = NamedSharding(Mesh(np.array(devices), (AXIS,)), PartitionSpec(AXIS))
    return jax.tree_util.tree_map(lambda x: jax.device_put(x, sharding), tree)


def replicate(tree, devices: Sequence | None = None):
    """A pytree with a leading axis of one copy per local device, placed on those devices (`put_sharded`)."""
    devices = list(devices or jax.local_devices())
    return put_sharded(jax.tree_util.tree_map(lambda x: np.stack([np.asarray(x)] * len(devices)), tree), devices)


def unreplicate(tree):
    """This process's first copy of a replicated pytree, as host numpy arrays."""
    return jax.tree_util.tree_map(lambda x: np.asarray(x.addressable_shards[0].data)[0]
                                  if isinstance(x, jax.Array) else np.asarray(x)[0], tree)


def check_batch_divisible(batch_clips: int, num_devices: int, num_processes: int = 1) -> None:
    """Raises `UserError` unless the global batch splits into whole clips per device."""
    if batch_clips % num_devices:
        raise UserError(f"train.batch_clips={batch_clips} clips cannot be split evenly over {num_devices} devices; "
                        f"use a multiple of {num_devices}")
    if batch_clips % num_processes:
        raise UserError(f"train.batch_clips={batch_clips} clips cannot be split evenly over {num_processes} "
                        "processes")


def shard_batch(batch: Mapping[str, np.ndarray], num_local_devices: int, n_segment: int) -> dict[str, np.ndarray]:
    """(n_clips*T, ...) host arrays -> (num_local_devices, n_clips/num_local_devices*T, ...), by whole clips.

    Device d gets clips [d*n/D, (d+1)*n/D) of the batch, in order.
    """
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        frames = v.shape[0]
        if frames % n_segment or (frames // n_segment) % num_local_devices:
            raise UserError(f"a batch of {frames} frames ({frames / n_segment:g} clips of {n_segment}) cannot be "
                            f"split evenly over {num_local_devices} devices")
        out[k] = v.reshape(num_local_devices, frames // num_local_devices, *v.shape[1:])
    return out


# ----------------------------------------------------------------------------------------------------------
# Data.


def default_data_dir() -> str:
    return os.path.expanduser(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def get_builder(config: ml_collections.ConfigDict):
    """The dataset builder of a config, built first when missing (`bigsmall_jax.prepare.ensure_dataset`)."""
    from bigsmall_jax.datasets.prepare import ensure_dataset

    ds = config.dataset
    settings = dict(ds.settings.to_dict()) if isinstance(ds.settings, ml_collections.ConfigDict) else dict(ds.settings)
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    return ensure_dataset(ds.name, ds.data_dir or default_data_dir(), config=ds.config or None,
                          source_dir=ds.source_dir or None, progress=jax.process_index() == 0, **settings)


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling seed of an epoch (a different order every epoch, a function of (seed, epoch))."""
    return int((seed * 1_000_003 + epoch * 7919 + 17) % (2**32 - 1))


def make_epoch_loader(source, config: ml_collections.ConfigDict, epoch: int, local_batch_clips: int):
    from bigsmall_jax.datasets.input_pipeline import make_loader

    return make_loader(source, batch_clips=local_batch_clips, shuffle=True, seed=epoch_seed(int(config.seed), epoch),
                       num_epochs=1, worker_count=int(config.dataset.worker_count), drop_remainder=True,
                       shard_by_process=True)


def steps_per_epoch(num_records: int, config: ml_collections.ConfigDict, num_processes: int) -> int:
    """Optimizer steps per epoch: full local batches of this process's shard (capped by train.steps_per_epoch)."""
    local_batch = int(config.train.batch_clips) // num_processes
    steps = (num_records // num_processes) // local_batch
    if steps < 1:
        raise UserError(f"the training split has {num_records} clips, fewer than one global batch of "
                        f"train.batch_clips={config.train.batch_clips}")
    cap = int(config.train.steps_per_epoch)
    return min(steps, cap) if cap > 0 else steps


# ----------------------------------------------------------------------------------------------------------
# Checkpoints.


def _checkpoint_manager(directory: Path, keep: int):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=max(1, int(keep)), create=True,
                                           cleanup_tmp_directories=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager(directory.absolute(), options=options,
                                 item_names=("state", "progress"))


def _allgather_text(text: str) -> list[str]:
    """The same string from every process (e.g. iterator states), in process order."""
    if jax.process_count() == 1:
        return [text]
    from jax.experimental import multihost_utils

    data = np.frombuffer(text.encode(), np.uint8)
    lengths = np.asarray(multihost_utils.process_allgather(np.array([data.size], np.int32))).reshape(-1)
    padded = np.zeros(int(lengths.max()), np.uint8)
    padded[: data.size] = data
    gathered = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(lengths), -1)
    return [bytes(gathered[i, : lengths[i]]).decode() for i in range(len(lengths))]


def save_train_checkpoint(manager, state_host, progress: Mapping[str, Any], iterator_state: bytes | None) -> None:
    """Saves (train state, progress JSON with every process's iterator position) at ``state.step``."""
    import orbax.checkpoint as ocp

    states = _allgather_text("" if iterator_state is None else iterator_state.decode())
    payload = {**progress, "iterator_states": states, "process_count": jax.process_count()}
    step = int(state_host.step)
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state_host),
                                               progress=ocp.args.JsonSave(payload)), force=True)
    manager.wait_until_finished()


def restore_train_checkpoint(manager, target_host) -> tuple[Any, dict] | None:
    """(train state, progress) of the latest checkpoint, or None when there is none."""
    import orbax.checkpoint as ocp

    step = manager.latest_step()
    if step is None:
        return None
    try:
        restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target_host),
                                                                 progress=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types for corrupt or mismatched checkpoints
        raise file_error(manager.directory / str(step), f"cannot restore the training checkpoint "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    progress = dict(restored["progress"])
    if int(progress.get("process_count", 1)) != jax.process_count():
        raise file_error(manager.directory / str(step), f"written by {progress.get('process_count')} processes; "
                         f"resume it with as many (now {jax.process_count()})")
    return restored["state"], progress


def export_model(path: Path, mc: ModelConfig, variables, metadata: Mapping[str, Any]) -> Path:
    """Writes a model checkpoint directory (`bigsmall_jax.checkpoints.model_dir` layout) from this process alone.

    In multi-process runs only process 0 writes, so orbax must not wait for the others (``process_local``).
    """
    from bigsmall_jax.checkpoints import model_dir as checkpoint

    return checkpoint.save_checkpoint(path, mc, variables, dict(metadata), overwrite=True,
                                      process_local=jax.process_count() > 1)


def import_params(path: Path, mc: ModelConfig) -> dict:
    """The variables of a model directory written by `export_model`, read by this process alone."""
    from bigsmall_jax.checkpoints import model_dir as checkpoint

    if jax.process_count() == 1:
        return checkpoint.load_model_dir(path)[1]
    import orbax.checkpoint as ocp

    me = jax.process_index()
    options = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
    target = checkpoint.abstract_variables(build_model(mc))
    with ocp.StandardCheckpointer(multiprocessing_options=options) as ckptr:
        variables = ckptr.restore(Path(path).absolute() / checkpoint.VARIABLES_DIR, target)
    checkpoint.check_variables(build_model(mc), variables, str(path))
    return variables


# ----------------------------------------------------------------------------------------------------------
# Logs.


class MetricsLog:
    """``metrics.jsonl`` (one JSON object per line), written by process 0 only."""

    def __init__(self, path: Path, enabled: bool, resume_step: int):
        self.path = path
        self.enabled = enabled
        self.records: list[dict] = []
        if enabled and path.exists():
            # Drop what was logged after the checkpoint we resume from: those steps run again.
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if int(rec.get("step", 0)) <= resume_step:
                    self.records.append(rec)
            self._rewrite()

    def _rewrite(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in self.records))
        os.replace(tmp, self.path)

    def write(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        record = {k: (float(v) if isinstance(v, np.floating | np.integer | float) and not isinstance(v, bool)
                      else v) for k, v in record.items()}
        self.records.append(dict(record))
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def _tensorboard_writer(logdir: Path):
    """A TensorBoard SummaryWriter when tensorboardX is installed, else None (optional)."""
    try:
        from tensorboardX import SummaryWriter  # type: ignore[import-not-found]
    except ImportError:
        return None
    return SummaryWriter(str(logdir))


def plot_losses(records: Sequence[Mapping], path_png: Path) -> Path | None:
    """Loss curves PNG from the metrics.jsonl records (`bigsmall_jax.evaluation.plots.plot_loss_curves`)."""
    from bigsmall_jax.evaluation import plots

    keep = ("step", "train_loss", "train_loss_au", "train_loss_bvp", "train_loss_resp", "val_loss",
            "val_loss_au", "val_loss_bvp", "val_loss_resp")
    rows = [{k: r[k] for k in keep if k in r} for r in records]
    rows = [r for r in rows if len(r) > 1]
    if not rows:
        return None
    return plots.plot_loss_curves(rows, path_png, title="BigSmall training losses")


# ----------------------------------------------------------------------------------------------------------
# Training.


def initialize_distributed(config: ml_collections.ConfigDict) -> None:
    """`jax.distributed.initialize` from the config / environment (multihost runs only)."""
    kwargs: dict[str, Any] = {}
    address = config.coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    num = int(config.num_processes) if int(config.num_processes) > 0 else os.environ.get("JAX_NUM_PROCESSES")
    pid = int(config.process_id) if int(config.process_id) >= 0 else os.environ.get("JAX_PROCESS_ID")
    if address:
        kwargs["coordinator_address"] = address
    if num is not None:
        kwargs["num_processes"] = int(num)
    if pid is not None:
        kwargs["process_id"] = int(pid)
    try:
        jax.distributed.initialize(**kwargs)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"multihost: jax.distributed.initialize({kwargs}) failed: {str(e).splitlines()[0]}") from None
    log.info("process %d of %d, %d local / %d global devices", jax.process_index(), jax.process_count(),
             jax.local_device_count(), jax.device_count())


@dataclasses.dataclass
class RunResult:
    """What `train_and_evaluate` returns.

    Attributes:
      workdir: the run directory.
      metrics: test metrics on process 0 (None on other processes, or when stopped early).
      final_step: optimizer steps done.
      params: host numpy params after the last step (every process).
      stopped_early: stopped by ``train.stop_after_steps`` before the end.
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


def _is_finite_tree(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree))


def _check_workdir_config(workdir: Path, config_json: dict) -> None:
    saved = workdir / "config.json"
    if not saved.is_file():
        return
    try:
        diffs = config_differences(json.loads(saved.read_text()), config_json)
    except json.JSONDecodeError:
        diffs = ["(config.json unreadable)"]
    if diffs:
        raise file_error(workdir, f"holds a run with a different config (keys {', '.join(diffs)}); use another "
                                  "--workdir, or the same config to resume it")


def _setup_run(config: ml_collections.ConfigDict, workdir: Path) -> _Run:
    """Validates, builds or opens the dataset, makes the step; the workdir is created only once all is well."""
    from bigsmall_jax.datasets import tfds_builders

    mc = validate_config(config)
    model = build_model(mc)
    n_proc = jax.process_count()
    batch_clips = int(config.train.batch_clips)
    check_batch_divisible(batch_clips, jax.device_count(), n_proc)
    # The data first: a bad dataset name or setting fails before anything is written.
    builder = get_builder(config)
    train_source = tfds_builders.data_source(builder, config.dataset.train_split)
    val_source = tfds_builders.data_source(builder, config.dataset.val_split) if config.dataset.val_split else None
    if builder.builder_config.n_segment != mc.n_segment:
        raise UserError(f"dataset {builder.name}/{builder.builder_config.name} has clips of "
                        f"{builder.builder_config.n_segment} frames but model.n_segment={mc.n_segment}; set "
                        f"dataset.settings.n_segment={mc.n_segment}")
    n_steps = steps_per_epoch(len(train_source), config, n_proc)
    total_steps = n_steps * int(config.train.num_epochs)
    tx, schedule = optim_lib.optimizer_from_config(config.optim, total_steps)
    weights = {"au": float(config.loss.au_weight), "bvp": float(config.loss.bvp_weight),
               "resp": float(config.loss.resp_weight)}
    pos_weight = tuple(float(x) for x in config.loss.au_pos_weight) or None
    starts = {t: int(round(float(config.loss[f"{t}_start"]) * total_steps)) for t in losses_lib.TASKS}
    step_fn = make_train_step(model, schedule, seed=int(config.seed), task_weights=weights, au_pos_weight=pos_weight,
                              pcgrad=bool(config.loss.pcgrad), per_clip_dropout=bool(config.train.per_clip_dropout),
                              task_start_steps=starts, debug_nan_step=int(config.train.debug_nan_step))
    config_json = config_to_json(config)
    _check_workdir_config(workdir, config_json)
    primary = jax.process_index() == 0
    workdir.mkdir(parents=True, exist_ok=True)
    if primary:
        write_json_atomic(workdir / "config.json", config_json)
    log.info("%s/%s: %d train clips, %d steps/epoch x %d epochs, %d clips/step on %d devices (%d processes)",
             builder.name, builder.builder_config.name, len(train_source), n_steps, int(config.train.num_epochs),
             batch_clips, jax.device_count(), n_proc)
    return _Run(config=config, workdir=workdir, mc=mc, model=model, builder=builder, train_source=train_source,
                val_source=val_source, steps_per_epoch=n_steps, total_steps=total_steps,
                local_batch=batch_clips // n_proc, tx=tx,
                p_train_step=jax.pmap(step_fn, axis_name=AXIS, donate_argnums=(0,)), weights=weights,
                pos_weight=pos_weight, primary=primary,
                manager=_checkpoint_manager(workdir / "checkpoints", int(config.train.keep_checkpoints)))


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
    from bigsmall_jax.datasets.input_pipeline import restore_iterator

    loader = make_epoch_loader(run.train_source, run.config, epoch, run.local_batch)
    return restore_iterator(loader, iterator_state.encode()) if iterator_state else iter(loader)


def _diverged(metrics: Mapping[str, float]) -> bool:
    return not (math.isfinite(metrics["loss"]) and math.isfinite(metrics["grad_norm"]))


def _train(run: _Run, state, progress: dict[str, Any], iterator_state: str | None):
    """The training loop from wherever `state` is; returns (state, stopped_early)."""
    config, workdir = run.config, run.workdir
    n_local, t = jax.local_device_count(), run.mc.n_segment
    batch_clips = int(config.train.batch_clips)
    stop_after = int(config.train.stop_after_steps)
    ckpt_every = int(config.train.checkpoint_every_steps)
    log_every = max(1, int(config.train.log_every_steps))
    step = int(jax.device_get(state.step)[0])
    metrics_log = MetricsLog(workdir / "metrics.jsonl", run.primary, step)
    tb = _tensorboard_writer(workdir / "tensorboard") if run.primary else None
    bar = tqdm(total=run.total_steps, initial=step, desc="train", unit="step", disable=not run.primary,
               dynamic_ncols=True)
    last_saved = run.manager.latest_step()
    window_start, window_clips = time.perf_counter(), 0

    def save(epoch: int, it_state: bytes | None) -> None:
        nonlocal last_saved
        host = unreplicate(state)
        if not _is_finite_tree(host.params):
            raise TrainingDiverged(f"parameters are not finite at step {int(host.step)}; not saved (the last good "
                                   f"checkpoint is step {last_saved} in {workdir / 'checkpoints'})")
        save_train_checkpoint(run.manager, host, {**progress, "epoch": epoch}, it_state)
        last_saved = int(host.step)

    def record(done: int, epoch: int, epoch_end: int, device_metrics) -> None:
        """Fetches the metrics of the step that made `done` updates; stops on a non-finite loss; logs."""
        nonlocal window_start, window_clips
        metrics = {k: float(v[0]) for k, v in jax.device_get(device_metrics).items()}
        if _diverged(metrics):
            kept = (f"the last good checkpoint is step {last_saved} in {workdir / 'checkpoints'}"
                    if last_saved is not None else "there is no checkpoint yet")
            raise TrainingDiverged(
                f"loss {metrics['loss']} / gradient norm {metrics['grad_norm']} at step {done - 1} (epoch "
                f"{epoch}; the parameters after {done - 1} updates): training stopped, {kept} (try a lower "
                "optim.lr, or optim.clip_norm)")
        window_clips += batch_clips
        rec = {"step": done, "epoch": epoch, **{f"train_{k}": v for k, v in metrics.items()}}
        if done % log_every == 0 or done == epoch_end:
            rec["clips_per_s"] = window_clips / max(time.perf_counter() - window_start, 1e-9)
            window_start, window_clips = time.perf_counter(), 0
            bar.set_postfix({k.removeprefix("loss_"): f"{v:.4g}" for k, v in metrics.items()
                             if k.startswith("loss")} | {"clips/s": f"{rec['clips_per_s']:.1f}"})
            if tb is not None:
                for k, v in rec.items():
                    tb.add_scalar(k, v, done)
        metrics_log.write(rec)
        bar.update(1)

    # The metrics of each step are fetched after the next step is dispatched, so that the device never
    # waits for the host to read and shard the next batch; `pending` holds the step not yet fetched. It is
    # flushed before every checkpoint, at the end of each epoch and before stopping.
    pending: tuple | None = None

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            args, pending = pending, None
            record(*args)

    try:
        epoch = int(progress["epoch"])
        while epoch < int(config.train.num_epochs):
            it = _epoch_iterator(run, epoch, iterator_state)
            iterator_state = None
            epoch_end = (epoch + 1) * run.steps_per_epoch
            while step < epoch_end:
                if 0 <= stop_after <= step:
                    flush()
                    log.info("stopping after step %d (train.stop_after_steps), as if killed", step)
                    return state, True
                try:
                    batch = next(it)
                except StopIteration:
                    raise UserError(f"the training loader ran out after step {step} of epoch {epoch}") from None
                state, metrics = run.p_train_step(state, shard_batch(batch, n_local, t))
                flush()  # the previous step's, while this one runs
                step += 1
                pending = (step, epoch, epoch_end, metrics)
                if step < epoch_end and ckpt_every > 0 and step % ckpt_every == 0:
                    flush()
                    save(epoch, it.get_state())
            flush()
            epoch += 1
            if run.val_source is not None:
                _validate(run, state, progress, epoch - 1, step, metrics_log)
            save(epoch, None)
    finally:
        bar.close()
        if tb is not None:
            tb.close()
        if run.primary and metrics_log.records:
            try:
                plot_losses(metrics_log.records, workdir / "loss_curves.png")
            except UserError as e:
                log.warning("no loss plot: %s", e)
    return state, False


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
                       evaluate_test: bool = True) -> RunResult:
    """Trains per `config` in `workdir` (resuming from its latest checkpoint), then tests the chosen epoch.

    Every process of a multihost run calls it; process 0 writes the workdir files (see the module
    docstring) and scores the test split.

    Raises:
      UserError: bad config, dataset or workdir; `TrainingDiverged` when the loss becomes NaN/inf.
    """
    run = _setup_run(config, Path(workdir).absolute())
    state, progress, iterator_state = _restore_or_init(run)
    state, stopped = _train(run, state, progress, iterator_state)
    run.manager.wait_until_finished()
    final = unreplicate(state)
    step = int(final.step)
    results = None
    if not stopped and evaluate_test and run.primary:
        results = _test(run, final.params, progress, step)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("bigsmall_train_done")
    return RunResult(run.workdir, results, step, final.params, stopped)


def validation_losses(model: BigSmall, state, source, config, weights: Mapping[str, float],
                      pos_weight) -> dict[str, float]:
    """Eval-mode loss means over a whole split: {"loss": weighted total, "loss_<task>": mean per task}.

    Each process reads its shard (every record once over all processes) and runs the model on one local
    device, without collectives in the loop (shards may differ by one batch); the (sum, count) pairs are
    added over processes at the end. Batches are zero-padded to a fixed size (masked out) so the eval
    function compiles once.
    """
    from bigsmall_jax.datasets.input_pipeline import make_loader

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
        from jax.experimental import multihost_utils

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
        out = model.apply({"params": params}, batch["big"], batch["small"], train=False)
        return losses_lib.task_sums(out, batch, pw)

    return jax.jit(sums)


def test_model(model: BigSmall, variables, builder, config, out_dir: Path | None) -> dict:
    """Scores a model on the config's test split (`bigsmall_jax.evaluate.evaluate_split`); plots into out_dir."""
    from bigsmall_jax.datasets import tfds_builders
    from bigsmall_jax.evaluation import evaluate

    source = tfds_builders.data_source(builder, config.dataset.test_split)
    results, predictions = evaluate.evaluate_split(model, variables, source,
                                                   batch_clips=int(config.train.eval_batch_clips),
                                                   progress=jax.process_index() == 0 and None)
    if out_dir is not None:
        try:
            evaluate.save_plots(results, predictions, out_dir, "test")
        except UserError as e:
            log.warning("no test plots: %s", e)
    return results


# ----------------------------------------------------------------------------------------------------------
# Command line.


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.train", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None,
                   help=f"config file, or the name of one in {CONFIGS_DIR} (default: {DEFAULT_CONFIG})")
    p.add_argument("--workdir", default=None, help="run directory (default: runs/<config name>)")
    p.add_argument("--multihost", action="store_true", help="initialize jax.distributed (one process per host)")
    p.add_argument("--coordinator-address", default=None, help="host:port of process 0 (multihost)")
    p.add_argument("--num-processes", type=int, default=None, help="number of processes (multihost)")
    p.add_argument("--process-id", type=int, default=None, help="this process's index (multihost)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=3e-4")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> ml_collections.ConfigDict:
    config = load_config(args.config)
    apply_overrides(config, args.overrides)
    if args.multihost:
        config.multihost = True
    if args.coordinator_address:
        config.coordinator_address = args.coordinator_address
    if args.num_processes is not None:
        config.num_processes = args.num_processes
    if args.process_id is not None:
        config.process_id = args.process_id
    validate_config(config)
    return config


def run(argv: Sequence[str] | None = None, *, cpu_presets: bool = False) -> RunResult:
    """What ``python -m bigsmall_jax.train ARGS`` does, returning the `RunResult` (no printing).

    Args:
      argv: the command line (without the program name).
      cpu_presets: first apply `bigsmall_jax.runtime.configure_cpu_runtime` (XLA:CPU flags measured to make
        the train step ~2x faster, and a malloc setting); only takes effect before JAX has started.
    """
    args = parse_args(argv)
    config = config_from_args(args)
    if cpu_presets:
        from bigsmall_jax.runtime import configure_cpu_runtime

        applied = configure_cpu_runtime(dtype=str(config.model.dtype), purpose="train")
        log.info("CPU presets (%s=0 turns them off): %s", CPU_PRESETS_ENV, applied)
    if config.multihost:
        initialize_distributed(config)
    name = Path(args.config).stem if args.config else DEFAULT_CONFIG
    workdir = Path(args.workdir) if args.workdir else Path("runs") / name
    return train_and_evaluate(config, workdir)


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
    start = time.perf_counter()
    result = run(argv, cpu_presets=os.environ.get(CPU_PRESETS_ENV, "1") != "0")
    if result.stopped_early:
        log.info("stopped at step %d; run the same command again to resume", result.final_step)
        return
    if result.metrics is None:  # not process 0
        return
    log.info("done in %.1f s: %s", time.perf_counter() - start, result.workdir / "metrics.json")
    if jax.process_index() == 0:
        table = {k: v for k, v in result.metrics.items() if k != "per_video"}
        print(json.dumps(table, indent=2, sort_keys=True, default=json_default))


if __name__ == "__main__":
    main()
