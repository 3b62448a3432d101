"""The training data: the config's dataset (built on first use), per-epoch shuffled loaders, steps per epoch."""

from __future__ import annotations

import os

import jax
import ml_collections

from bigsmall_jax.datasets.input_pipeline import make_loader
from bigsmall_jax.datasets.prepare import ensure_dataset
from bigsmall_jax.errors import UserError

DATA_DIR_ENV = "BIGSMALL_DATA_DIR"
DEFAULT_DATA_DIR = "~/.cache/bigsmall_jax/data"


def default_data_dir() -> str:
    """The TFDS data dir when the config leaves ``dataset.data_dir`` empty: ``$BIGSMALL_DATA_DIR`` or the cache."""
    return os.path.expanduser(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def get_builder(config: ml_collections.ConfigDict):
    """The dataset builder of a config, built first when missing (`bigsmall_jax.datasets.prepare.ensure_dataset`)."""
    ds = config.dataset
    settings = dict(ds.settings.to_dict()) if isinstance(ds.settings, ml_collections.ConfigDict) else dict(ds.settings)
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    return ensure_dataset(ds.name, ds.data_dir or default_data_dir(), config=ds.config or None,
                          source_dir=ds.source_dir or None, progress=jax.process_index() == 0, **settings)


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling seed of an epoch (a different order every epoch, a function of (seed, epoch))."""
    return int((seed * 1_000_003 + epoch * 7919 + 17) % (2**32 - 1))


def make_epoch_loader(source, config: ml_collections.ConfigDict, epoch: int, local_batch_clips: int,
                      big_first_only: bool = False):
    """One epoch of this process's shard of `source`, shuffled by `epoch_seed`, in full batches of
    `local_batch_clips` clips ((local_batch_clips * T, ...) arrays; `bigsmall_jax.datasets.input_pipeline`);
    `big_first_only`: only the first Big frame of each clip (a model with Big downsampling)."""
    return make_loader(source, batch_clips=local_batch_clips, shuffle=True, seed=epoch_seed(int(config.seed), epoch),
                       num_epochs=1, worker_count=int(config.dataset.worker_count), drop_remainder=True,
                       shard_by_process=True, big_first_only=big_first_only)


def steps_per_epoch(num_records: int, config: ml_collections.ConfigDict, num_processes: int) -> int:
    """Optimizer steps per epoch: full local batches of this process's shard (capped by train.steps_per_epoch)."""
    local_batch = int(config.train.batch_clips) // num_processes
    steps = (num_records // num_processes) // local_batch
    if steps < 1:
        raise UserError(f"the training split has {num_records} clips, fewer than one global batch of "
                        f"train.batch_clips={config.train.batch_clips}")
    cap = int(config.train.steps_per_epoch)
    return min(steps, cap) if cap > 0 else steps
