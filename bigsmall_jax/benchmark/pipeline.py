"""The input pipeline: the rate of each stage, what it delivers to the devices, and an epoch of training with
and without it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grain
import jax
import numpy as np
from tqdm import tqdm

from bigsmall_jax.benchmark.models import TrainStepBench
from bigsmall_jax.datasets import tfds_builders
from bigsmall_jax.datasets.columns import open_columns
from bigsmall_jax.datasets.device_batch import pack_batch
from bigsmall_jax.datasets.input_pipeline import (
    ClipBatches,
    absl_flags_parsed,
    batch_bytes_per_clip,
    decode_examples,
    make_loader,
    read_raw,
    tfds_example_layout,
)
from bigsmall_jax.datasets.prepare import ensure_dataset
from bigsmall_jax.errors import UserError
from bigsmall_jax.train.parallel import OneBehind, prefetch_to_devices, put_sharded, shard_batch

# The synthetic dataset of the input-pipeline benchmark: 6 subjects x 2 videos of 8 s at 25 fps.
PIPELINE_SYNTHETIC: dict[str, Any] = dict(n_subjects=6, videos_per_subject=2, duration_s=8.0, fps=25.0,
                                          frame_size=64, seed=0)
QUICK_PIPELINE_SYNTHETIC: dict[str, Any] = dict(n_subjects=4, videos_per_subject=1, duration_s=2.0, fps=25.0,
                                                frame_size=48, seed=0)

# Batch sizes (clips) at which the pipeline's delivered rate is also measured: what an accelerator trains with
# (the accelerator check uses 256); per-batch costs weigh less as batches grow.
ACCELERATOR_BATCHES: tuple[int, ...] = (64, 256)

# epoch -> that epoch's batches (host arrays, `batch_clips` clips each), shuffled with a seed of its own.
EpochLoader = Callable[[int], Iterable[Mapping[str, np.ndarray]]]


def _clips_per_s(clips: int, seconds: float) -> float:
    return clips / max(seconds, 1e-9)


class _Batches:
    """One batch already in memory, handed out `n` times, as a grain data source: times grain's own machinery
    (sampler, iterator, worker transport) alone; small enough to pickle to worker processes."""

    def __init__(self, batch, n: int):
        self._batch, self._n = batch, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, k: int):
        return self._batch


def stage_rates(source, *, batch_clips: int, big_first_only: bool, worker_count: int = 0, seed: int = 0,
                devices: Sequence | None = None, passes: int = 3) -> dict[str, Any]:
    """The largest rate each stage of the input pipeline sustains alone, in clips/s, and what it delivers.

    Stages, each timed over `passes` passes of one shuffled epoch of `source` in batches of `batch_clips`:
    ``read`` (a batch gathered from the split's memory-mapped columns, `bigsmall_jax.datasets.columns`: what
    the trainer reads every epoch), ``decode`` (a batch read from the ArrayRecord files and decoded,
    `input_pipeline.read_raw` + `input_pipeline.decode_examples`: paid once per split when the columns are
    built, and per batch without them), ``batch`` (grain's loader handing out batches already in memory, with
    `worker_count` workers: its sampler, iterator and worker transport alone), ``transfer`` (host batch ->
    devices as the trainer sends it: `device_batch.pack_batch`, `train.parallel.shard_batch`,
    ``jax.device_put``, waited for). ``delivered`` is the whole
    pipeline as the trainer runs it (`input_pipeline.make_loader` -> `train.parallel.prefetch_to_devices`),
    with no step, at `batch_clips` and at the larger `ACCELERATOR_BATCHES` the split can fill. The bottleneck is
    the slowest of the stages run every epoch (read, batch, transfer).

    Returns:
      {"stage_clips_per_s": {stage: clips/s}, "stage_steps_per_s": {stage: batches/s}, "bottleneck",
      "delivered_clips_per_s", "delivered_clips_per_s_by_batch" ({batch clips: clips/s}), "bytes_per_clip"
      (host -> device), "columns_build_s", "big_first_only"}.
    """
    devices = list(devices or jax.local_devices())
    layout = tfds_example_layout(source)
    if layout is None:
        raise UserError(f"{source!r}: not a TFDS source of BigSmall clips")
    start = time.perf_counter()
    columns = open_columns(source, layout, big_first_only, progress=False)
    build_s = time.perf_counter() - start
    if columns is None:
        raise UserError(f"{source!r}: its columns cannot be written")
    epoch = ClipBatches(source, batch_clips=batch_clips, shuffle=True, seed=seed, num_epochs=1, drop_remainder=True,
                        shard=(0, 1), big_first_only=big_first_only)
    order = [epoch.indices(k) for _ in range(passes) for k in range(len(epoch))]
    clips = len(order) * batch_clips
    start = time.perf_counter()
    gathered = [columns.gather(idx) for idx in order]
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    for idx in order:
        decode_examples(read_raw(source, idx), *layout, big_first_only=big_first_only)
    decode_s = time.perf_counter() - start
    sampler = grain.samplers.IndexSampler(num_records=len(gathered), shard_options=grain.sharding.NoSharding(),
                                          shuffle=False, num_epochs=1, seed=0)
    if worker_count:
        absl_flags_parsed()
    in_memory = grain.DataLoader(data_source=_Batches(gathered[0], len(gathered)), sampler=sampler,
                                 worker_count=worker_count)
    _, batches_per_s = count_batches(in_memory)
    t = layout[0]
    start = time.perf_counter()
    for batch in gathered:
        jax.block_until_ready(put_sharded(shard_batch(pack_batch(batch), len(devices), t), devices))
    transfer_s = time.perf_counter() - start
    delivered, sent = delivered_rate(source, batch_clips=batch_clips, big_first_only=big_first_only,
                                     worker_count=worker_count, seed=seed + 1, passes=passes, devices=devices)
    by_batch = {str(b): delivered_rate(source, batch_clips=b, big_first_only=big_first_only, worker_count=worker_count,
                                       seed=seed + 1, passes=passes, devices=devices)[0]
                for b in ACCELERATOR_BATCHES if b != batch_clips and b <= len(source)}
    rates = {"read": _clips_per_s(clips, read_s), "decode": _clips_per_s(clips, decode_s),
             "batch": batches_per_s * batch_clips, "transfer": _clips_per_s(clips, transfer_s)}
    every_epoch = {k: rates[k] for k in ("read", "batch", "transfer")}
    return {"stage_clips_per_s": rates, "stage_steps_per_s": {k: v / batch_clips for k, v in rates.items()},
            "bottleneck": min(every_epoch, key=every_epoch.get),
            "delivered_clips_per_s": delivered, "delivered_clips_per_s_by_batch": {str(batch_clips): delivered,
                                                                                   **by_batch},
            "bytes_per_clip": batch_bytes_per_clip(sent, batch_clips),  # a batch as the trainer sends it
            "columns_build_s": build_s, "big_first_only": big_first_only}


def delivered_rate(source, *, batch_clips: int, big_first_only: bool, worker_count: int, seed: int, passes: int,
                   devices: Sequence, min_batches: int = 40) -> tuple[float, Any]:
    """(clips/s, the last batch) of the whole pipeline as the trainer runs it (`input_pipeline.make_loader` ->
    `train.parallel.prefetch_to_devices`, packed), each batch waited for, no step; at least `passes` epochs
    and `min_batches` batches, after one untimed batch."""
    t = tfds_example_layout(source)[0]
    epochs = max(passes, -(-min_batches * batch_clips // len(source)))
    loader = make_loader(source, batch_clips=batch_clips, shuffle=True, seed=seed, num_epochs=epochs,
                         worker_count=worker_count, shard_by_process=False, big_first_only=big_first_only)
    batches = prefetch_to_devices(iter(loader), t, devices=devices, pack=pack_batch)
    batch, _ = next(batches)
    jax.block_until_ready(batch)
    start = time.perf_counter()
    delivered = 0
    for batch, _ in batches:
        jax.block_until_ready(batch)
        delivered += batch["frames"].shape[0] * batch["frames"].shape[1] // t
    return _clips_per_s(delivered, time.perf_counter() - start), batch


def count_batches(batches: Iterable[Any]) -> tuple[int, float]:
    """(number of batches, batches per second) of one pass over `batches`."""
    start = time.perf_counter()
    n = sum(1 for _ in batches)
    return n, n / (time.perf_counter() - start)


def epoch_with_loader(train: TrainStepBench, batches: Iterable[Mapping[str, np.ndarray]]) -> float:
    """Seconds of the trainer's loop over `batches`: the next batches are copied to the devices while a step
    runs (`prefetch_to_devices`), and each step's metrics are fetched after the next step is dispatched
    (`OneBehind`)."""
    t = train.model.config.n_segment
    start = time.perf_counter()
    behind = OneBehind(jax.device_get)
    devices = jax.local_devices()[: train.n_devices]
    for batch, _ in prefetch_to_devices(iter(batches), t, devices=devices, pack=pack_batch):
        behind.push(train.dispatch(batch))
    behind.flush()
    return time.perf_counter() - start


def epoch_synchronous(train: TrainStepBench, batches: Iterable[Mapping[str, np.ndarray]]) -> float:
    """Seconds of host batch -> devices -> step -> its metrics fetched, one step after the other."""
    start = time.perf_counter()
    for batch in batches:
        train.run(batch)
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


def _epoch_loader(source, *, batch_clips: int, seed: int, worker_count: int, big_first_only: bool) -> EpochLoader:
    """The trainer's loader of one shuffled epoch (seed ``seed + epoch``), whole batches only."""

    def make(epoch: int):
        return make_loader(source, batch_clips=batch_clips, shuffle=True, seed=seed + epoch, num_epochs=1,
                           worker_count=worker_count, drop_remainder=True, shard_by_process=True,
                           big_first_only=big_first_only)

    return make


def benchmark_input_pipeline(train: TrainStepBench, *, data_dir: str | os.PathLike, batch_clips: int,
                             settings: Mapping[str, Any] | None = None, repeats: int = 3, worker_count: int = 0,
                             seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """The input pipeline's stages on a prepared synthetic dataset, and an epoch of training against the step.

    Args:
      train: the train step to run (its model's clip length must match the dataset's).
      data_dir: TFDS data directory; the dataset is built there first if missing.
      batch_clips: clips per batch (all local devices together).
      settings: `bigsmall_jax.synthetic.SyntheticConfig` fields (default `PIPELINE_SYNTHETIC`).
      repeats: epochs timed with the loader, and as many without it, alternately; passes of the stage timings.
      worker_count: grain worker processes of the loader (the trainer's ``dataset.worker_count``).

    Returns:
      `stage_rates`'s figures, and {"batches_per_s" (the loader), "epoch_s" (the trainer's loop: batches
      prefetched to the devices, each step's metrics fetched after the next step is dispatched),
      "step_only_s", "loader_overhead", "epoch_synchronous_s" (host batch copied and its step's metrics
      fetched before the next batch is read), "synchronous_overhead", "steps_per_epoch", "train_records",
      "batch_clips", "worker_count", "build_s", "dataset"}.
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
    first_only = train.model.big_per_clip
    devices = jax.local_devices()[: train.n_devices]
    stages = stage_rates(source, batch_clips=batch_clips, big_first_only=first_only, worker_count=worker_count,
                         seed=seed, devices=devices, passes=repeats)
    loader = _epoch_loader(source, batch_clips=batch_clips, seed=seed, worker_count=worker_count,
                           big_first_only=first_only)
    n_batches, batches_per_s = count_batches(loader(0))
    epochs = time_epochs(train, loader, n_batches, repeats, progress)
    epoch_s, step_only_s, synchronous_s = epochs["epoch_s"], epochs["step_only_s"], epochs["epoch_synchronous_s"]
    return {**stages, "batches_per_s": batches_per_s, "epoch_s": epoch_s,
            "step_only_s": step_only_s, "loader_overhead": epoch_s / step_only_s - 1.0,
            "epoch_synchronous_s": synchronous_s, "synchronous_overhead": synchronous_s / step_only_s - 1.0,
            "steps_per_epoch": n_batches, "train_records": n, "batch_clips": batch_clips,
            "worker_count": worker_count, "build_s": build_s, "dataset": settings}
