"""The input pipeline against the train step: reading speed, and an epoch of training with and without it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from bigsmall_jax.benchmark.models import TrainStepBench
from bigsmall_jax.datasets import tfds_builders
from bigsmall_jax.datasets.input_pipeline import clip_to_model, make_loader
from bigsmall_jax.datasets.prepare import ensure_dataset
from bigsmall_jax.errors import UserError
from bigsmall_jax.train.parallel import OneBehind, shard_batch

# The synthetic dataset of the input-pipeline benchmark: 6 subjects x 2 videos of 8 s at 25 fps.
PIPELINE_SYNTHETIC: dict[str, Any] = dict(n_subjects=6, videos_per_subject=2, duration_s=8.0, fps=25.0,
                                          frame_size=64, seed=0)
QUICK_PIPELINE_SYNTHETIC: dict[str, Any] = dict(n_subjects=4, videos_per_subject=1, duration_s=2.0, fps=25.0,
                                                frame_size=48, seed=0)

# epoch -> that epoch's batches (host arrays, `batch_clips` clips each), shuffled with a seed of its own.
EpochLoader = Callable[[int], Iterable[Mapping[str, np.ndarray]]]


def records_per_s(source, seed: int = 0) -> float:
    """Clips read from `source` and decoded (`clip_to_model`) per second, in a shuffled order."""
    order = np.random.default_rng(seed).permutation(len(source))
    start = time.perf_counter()
    for i in order:
        clip_to_model(dict(source[int(i)]))
    return len(source) / (time.perf_counter() - start)


def count_batches(batches: Iterable[Any]) -> tuple[int, float]:
    """(number of batches, batches per second) of one pass over `batches`."""
    start = time.perf_counter()
    n = sum(1 for _ in batches)
    return n, n / (time.perf_counter() - start)


def epoch_with_loader(train: TrainStepBench, batches: Iterable[Mapping[str, np.ndarray]]) -> float:
    """Seconds of the trainer's loop over `batches`: each step's metrics are fetched after the next step is
    dispatched (`OneBehind`), so the next batch is read and sharded while the step runs."""
    t = train.model.config.n_segment
    start = time.perf_counter()
    behind = OneBehind(jax.device_get)
    for batch in batches:
        behind.push(train.dispatch(shard_batch(batch, train.n_devices, t)))
    behind.flush()
    return time.perf_counter() - start


def epoch_synchronous(train: TrainStepBench, batches: Iterable[Mapping[str, np.ndarray]]) -> float:
    """Seconds of host batch -> devices -> step -> its metrics fetched, one step after the other."""
    t = train.model.config.n_segment
    start = time.perf_counter()
    for batch in batches:
        train.run(shard_batch(batch, train.n_devices, t))
    return time.perf_counter() - start


def epoch_step_only(train: TrainStepBench, steps: int) -> float:
    """Seconds of `steps` steps on the batch already on the devices."""
    start = time.perf_counter()
    for _ in range(steps):
        train.run()
    return time.perf_counter() - start


def time_epochs(train: TrainStepBench, loader: EpochLoader, steps: int, repeats: int,
                progress: bool = True) -> dict[str, float]:
    """Median seconds of an epoch three ways, alternating, after one warm-up epoch that fills caches.

    Returns:
      {"epoch_s" (`epoch_with_loader`), "epoch_synchronous_s" (`epoch_synchronous`), "step_only_s"
      (`epoch_step_only` of `steps` steps)}.
    """
    epoch_with_loader(train, loader(0))
    with_loader, synchronous, step_only = [], [], []
    for r in tqdm(range(repeats), desc="epochs", unit="epoch", disable=not progress, leave=False):
        with_loader.append(epoch_with_loader(train, loader(r + 1)))
        synchronous.append(epoch_synchronous(train, loader(r + 1)))
        step_only.append(epoch_step_only(train, steps))
    return {"epoch_s": float(np.median(with_loader)), "epoch_synchronous_s": float(np.median(synchronous)),
            "step_only_s": float(np.median(step_only))}


def _epoch_loader(source, *, batch_clips: int, seed: int, worker_count: int) -> EpochLoader:
    """The trainer's loader of one shuffled epoch (seed ``seed + epoch``), whole batches only."""

    def make(epoch: int):
        return make_loader(source, batch_clips=batch_clips, shuffle=True, seed=seed + epoch, num_epochs=1,
                           worker_count=worker_count, drop_remainder=True, shard_by_process=True)

    return make


def benchmark_input_pipeline(train: TrainStepBench, *, data_dir: str | os.PathLike, batch_clips: int,
                             settings: Mapping[str, Any] | None = None, repeats: int = 3, worker_count: int = 0,
                             seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Reading speed of a prepared synthetic dataset, and an epoch of training against the step alone.

    Args:
      train: the train step to run (its model's clip length must match the dataset's).
      data_dir: TFDS data directory; the dataset is built there first if missing.
      batch_clips: clips per batch (all local devices together).
      settings: `bigsmall_jax.synthetic.SyntheticConfig` fields (default `PIPELINE_SYNTHETIC`).
      repeats: epochs timed with the loader, and as many without it, alternately.
      worker_count: grain worker processes of the loader (the trainer's ``dataset.worker_count``).

    Returns:
      {"records_per_s", "batches_per_s", "epoch_s" (the trainer's loop: each step's metrics fetched after the
      next step is dispatched), "step_only_s", "loader_overhead", "epoch_synchronous_s" (metrics fetched
      right after each step, the next batch read only then), "synchronous_overhead", "steps_per_epoch",
      "train_records", "batch_clips", "worker_count", "build_s", "dataset"}.
    """
    settings = dict(PIPELINE_SYNTHETIC if settings is None else settings)
    start = time.perf_counter()
    builder = ensure_dataset("synthetic", data_dir, progress=progress, n_segment=train.model.config.n_segment,
                             **settings)
    build_s = time.perf_counter() - start
    source = tfds_builders.data_source(builder, "train")
    n = len(source)
    if n // batch_clips < 1:
        raise UserError(f"the pipeline dataset has {n} training clips, fewer than one batch of {batch_clips}")
    loader = _epoch_loader(source, batch_clips=batch_clips, seed=seed, worker_count=worker_count)
    reading = records_per_s(source, seed)
    n_batches, batches_per_s = count_batches(loader(0))
    epochs = time_epochs(train, loader, n_batches, repeats, progress)
    epoch_s, step_only_s, synchronous_s = epochs["epoch_s"], epochs["step_only_s"], epochs["epoch_synchronous_s"]
    return {"records_per_s": reading, "batches_per_s": batches_per_s, "epoch_s": epoch_s,
            "step_only_s": step_only_s, "loader_overhead": epoch_s / step_only_s - 1.0,
            "epoch_synchronous_s": synchronous_s, "synchronous_overhead": synchronous_s / step_only_s - 1.0,
            "steps_per_epoch": n_batches, "train_records": n, "batch_clips": batch_clips,
            "worker_count": worker_count, "build_s": build_s, "dataset": settings}
