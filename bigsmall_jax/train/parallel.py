"""Data parallelism: the pmap axis, device placement, batch sharding, processes and dispatch-ahead."""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bigsmall_jax.errors import UserError

log = logging.getLogger(__name__)

AXIS = "batch"


def put_sharded(tree, devices: Sequence | None = None):
    """Host arrays with a leading axis of one slice per device -> device arrays, slice d on device d.

    The placement (a sharding over the leading axis) is the one pmap gives its outputs, so a pmapped step
    compiles once for the arrays it is first given and for those it returns.
    """
    devices = list(devices or jax.local_devices())
    sharding = NamedSharding(Mesh(np.array(devices), (AXIS,)), PartitionSpec(AXIS))
    return jax.device_put(tree, sharding)  # one call for the whole tree: less dispatch per array


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

    Device d gets clips [d*n/D, (d+1)*n/D) of the batch, in order. Arrays with fewer rows per clip (the
    loader's Big frames and their statistics, one row per clip with Big downsampling) are split by the
    same clips; the clip count comes from "small" (a packed batch's "frames"; else the first array).
    """
    arrays = {k: np.asarray(v) for k, v in batch.items()}
    reference = arrays.get("small", arrays.get("frames", next(iter(arrays.values()))))
    frames = reference.shape[0]
    if frames % n_segment or (frames // n_segment) % num_local_devices:
        raise UserError(f"a batch of {frames} frames ({frames / n_segment:g} clips of {n_segment}) cannot be "
                        f"split evenly over {num_local_devices} devices")
    n_clips = frames // n_segment
    out = {}
    for k, v in arrays.items():
        if v.shape[0] % n_clips:
            raise UserError(f"batch array {k!r} has {v.shape[0]} rows, not a whole number per clip of {n_clips}")
        out[k] = v.reshape(num_local_devices, v.shape[0] // num_local_devices, *v.shape[1:])
    return out


def prefetch_to_devices(batches: Iterator[Mapping[str, np.ndarray]], n_segment: int, size: int = 2,
                        devices: Sequence | None = None,
                        pack: Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]] | None = None,
                        ) -> Iterator[tuple[dict[str, jax.Array], Any]]:
    """Host batches -> (device batch, the iterator's position after it), `size` batches ahead.

    Each batch is split by clips over the local devices (`shard_batch`) and sent with ``jax.device_put``,
    which returns at once: the copy of the next batches runs while the current step computes. The position
    (``batches.get_state()`` when the iterator has one, else None) is the one to checkpoint once that batch
    has been trained on: the iterator itself is `size` batches further.

    Args:
      batches: an iterator of host batches (a loader iterator).
      n_segment: frames per clip.
      size: batches on the devices ahead of the one being used (>= 1).
      devices: the local devices (default ``jax.local_devices()``).
      pack: applied to each host batch before it is sent (the trainer's
        `bigsmall_jax.datasets.device_batch.pack_batch`: three arrays instead of a dozen).
    """
    devices = list(devices or jax.local_devices())
    get_state = getattr(batches, "get_state", None)
    queue: collections.deque = collections.deque()

    def pull() -> bool:
        try:
            batch = next(batches)
        except StopIteration:
            return False
        if pack is not None:
            batch = pack(batch)
        queue.append((put_sharded(shard_batch(batch, len(devices), n_segment), devices),
                      get_state() if get_state is not None else None))
        return True

    for _ in range(max(1, int(size))):
        if not pull():
            break
    while queue:
        item = queue.popleft()
        pull()
        yield item


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """`jax.distributed.initialize` for a multihost run (one process per host).

    Args:
      coordinator_address: host:port of process 0; None: ``JAX_COORDINATOR_ADDRESS`` or the cluster's own.
      num_processes: None: ``JAX_NUM_PROCESSES`` or the cluster's.
      process_id: this process's index; None: ``JAX_PROCESS_ID`` or the cluster's.
    Raises:
      UserError: the initialization failed.
    """
    kwargs: dict[str, Any] = {}
    address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    num = num_processes if num_processes is not None else os.environ.get("JAX_NUM_PROCESSES")
    pid = process_id if process_id is not None else os.environ.get("JAX_PROCESS_ID")
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


def allgather_text(text: str) -> list[str]:
    """The same string from every process (e.g. iterator states), in process order."""
    if jax.process_count() == 1:
        return [text]
    data = np.frombuffer(text.encode(), np.uint8)
    lengths = np.asarray(multihost_utils.process_allgather(np.array([data.size], np.int32))).reshape(-1)
    padded = np.zeros(int(lengths.max()), np.uint8)
    padded[: data.size] = data
    gathered = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(lengths), -1)
    return [bytes(gathered[i, : lengths[i]]).decode() for i in range(len(lengths))]


class OneBehind:
    """Hands each dispatched step's outputs to `fetch` only after the next step has been dispatched.

    A device runs asynchronously; reading a step's metrics (``jax.device_get``) makes the host wait for
    that step. Fetching step s after step s+1 is dispatched lets the host read and shard the next batch
    while the device computes, so the device never waits for the host. The trainer and the benchmark
    drive their loops with it::

        behind = OneBehind(record)
        for batch in batches:
            behind.push(step(batch))   # fetches the previous step's outputs, if any
        behind.flush()                 # the last one

    Args:
      fetch: called as ``fetch(*args)`` with what was pushed, one step late (or at `flush`).
    """

    def __init__(self, fetch: Callable[..., Any]):
        self._fetch = fetch
        self._pending: tuple | None = None

    def push(self, *args: Any) -> None:
        """Holds `args` (this step's outputs) and fetches the previous step's."""
        previous, self._pending = self._pending, args
        if previous is not None:
            self._fetch(*previous)

    def flush(self) -> None:
        """Fetches the held step now (before a checkpoint, at the end of an epoch, before stopping)."""
        if self._pending is not None:
            previous, self._pending = self._pending, None
            self._fetch(*previous)
