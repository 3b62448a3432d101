"""Input pipeline: grain loaders of model-ready batches, and an ordered per-video reader for evaluation.

Training (`make_loader`): a grain `DataLoader` over a split's data source (`tfds_builders.data_source`),
shuffled by seed, sharded so that every JAX process reads a disjoint part, batched by clips and then
flattened to frames. A batch of ``B = batch_clips`` clips of ``T = n_segment`` frames is a dict of numpy
arrays, frames of a clip consecutive (the layout `bigsmall_jax.model.bigsmall` expects):

  ============ ======================= ================================================================
  key          shape / dtype           meaning
  ============ ======================= ================================================================
  big          (B*T, 144, 144, 3) f32  standardized Big frames, (big_u8 - video mean) / video std
  small        (B*T, 9, 9, 3) f32      diff-normalized Small frames
  au           (B*T, 12) f32           AU labels in {0, 1}; 0 where ``au_mask`` is 0
  au_mask      (B*T, 12) f32           1 where the AU label is known and the frame is real
  bvp, resp    (B*T,) f32              diff-normalized waves; 0 where the mask is 0
  bvp_mask     (B*T,) f32              1 where the label is known and the frame is real (same for resp)
  frame_mask   (B*T,) f32              0 for frames padded after a video's end
  record_index (B*T,) int32            the clip's index in the data source (for bookkeeping / tests)
  ============ ======================= ================================================================

Missing labels are 0 *and* masked (never NaN) so that a masked loss has finite gradients.

The loader's iterator has ``get_state() -> bytes`` / ``set_state(bytes)`` (see `iterator_state`), and
works with Orbax: ``ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it))`` with the handler
``grain.checkpoint.CheckpointHandler`` saves the position next to the model.

Evaluation (`iter_videos`): the clips of each video in order, concatenated back into whole videos.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import grain
import numpy as np
from absl import flags

from bigsmall_jax.datasets.preprocess import standardize_big
from bigsmall_jax.errors import UserError

log = logging.getLogger(__name__)

WAVE_LABELS: tuple[str, ...] = ("bvp", "resp")
RATE_LABELS: tuple[str, ...] = ("hr_bpm", "rr_bpm")


# ----------------------------------------------------------------------------------------------------------
# Per-record transforms.


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def clip_to_model(record: dict[str, Any]) -> dict[str, np.ndarray]:
    """One stored clip -> model-ready arrays of its T frames (not yet batched).

    Args:
      record: a decoded example (see `bigsmall_jax.datasets.tfds_builders`), optionally with "record_index".

    Returns:
      {"big": (T, B, B, 3) f32 standardized, "small": (T, S, S, 3) f32, "au"/"au_mask": (T, 12) f32,
      "bvp", "bvp_mask", "resp", "resp_mask", "frame_mask": (T,) f32, "record_index": (T,) int32}.
    """
    frame_mask = np.asarray(record["frame_mask"]).astype(np.float32)
    t = frame_mask.shape[0]
    out = {
        "big": standardize_big(record["big"], float(record["big_mean"]), float(record["big_std"])),
        "small": np.asarray(record["small"], np.float32),
        "frame_mask": frame_mask,
        "record_index": np.full((t,), int(record.get("record_index", -1)), np.int32),
    }
    for kind in ("au", *WAVE_LABELS):
        value = np.asarray(record[kind], np.float32)
        known = np.isfinite(value)
        mask = known & (frame_mask[:, None] > 0 if value.ndim == 2 else frame_mask > 0)
        out[kind] = np.where(known, value, np.float32(0.0)).astype(np.float32)
        out[f"{kind}_mask"] = mask.astype(np.float32)
    return out


def flatten_clips(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(B, T, ...) arrays -> (B*T, ...): the frames of each clip stay consecutive."""
    return {k: v.reshape((v.shape[0] * v.shape[1], *v.shape[2:])) for k, v in batch.items()}


class _ClipToModel(grain.transforms.Map):
    def map(self, element):
        return clip_to_model(element)


class _FlattenClips(grain.transforms.Map):
    def map(self, element):
        return flatten_clips(element)


class IndexedSource:
    """A random-access data source whose records also carry their index as "record_index".

    Args:
      source: any sequence-like source of dict records (``len`` and ``[i]``), e.g. a TFDS ArrayRecord
        data source.
    """

    def __init__(self, source):
        self._source = source

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index):
        record = dict(self._source[index])
        record["record_index"] = int(index)
        return record

    def __repr__(self) -> str:  # grain checks it when restoring an iterator state: keep it stable
        info = getattr(self._source, "dataset_info", None)
        if info is not None:
            name = f"{info.full_name}:{getattr(self._source, 'split', '?')}"
        else:
            name = type(self._source).__name__
        return f"IndexedSource({name}, {len(self)} records)"


# ----------------------------------------------------------------------------------------------------------
# Training loader.


def shard_options(shard_by_process: bool = True, drop_remainder: bool = True, process_index: int | None = None,
                  process_count: int | None = None) -> grain.sharding.ShardOptions:
    """How records are split between hosts.

    Args:
      shard_by_process: False: every process reads everything.
      drop_remainder: True: every shard gets len // count records (hosts then step in lockstep; up to
        count - 1 records are never read); False: the first len % count shards get one more.
      process_index, process_count: simulate a process (tests); default ``jax.process_index()`` /
        ``jax.process_count()``.
    """
    if not shard_by_process:
        return grain.sharding.NoSharding()
    if process_index is None and process_count is None:
        return grain.sharding.ShardByJaxProcess(drop_remainder=drop_remainder)
    if process_index is None or process_count is None:
        raise ValueError("give both process_index and process_count, or neither")
    return grain.sharding.ShardOptions(shard_index=int(process_index), shard_count=int(process_count),
                                       drop_remainder=drop_remainder)


def make_loader(
    data_source,
    *,
    batch_clips: int,
    shuffle: bool,
    seed: int,
    num_epochs: int | None = None,
    worker_count: int = 0,
    drop_remainder: bool = True,
    shard_by_process: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
    worker_buffer_size: int = 2,
) -> grain.DataLoader:
    """A grain loader of model-ready batches (see the module docstring for the batch layout).

    Args:
      data_source: a split's records, e.g. ``tfds_builders.data_source(builder, "train")``.
      batch_clips: clips per batch on this process (a batch has batch_clips * n_segment frames).
      shuffle: shuffle the records globally each epoch (a different order every epoch).
      seed: shuffling seed (0 <= seed < 2**32); the same seed gives the same batches.
      num_epochs: passes over the data; None repeats forever (batches then run across epoch ends).
      worker_count: grain worker processes (0: in this process). Each worker batches its own share of
        the shuffled clips, so batches depend on it; for a given worker_count they are fixed by the seed.
      drop_remainder: drop the last incomplete batch, and shard records evenly between processes.
      shard_by_process: each JAX process reads a disjoint part of the records.
      process_index, process_count: simulate a process instead of asking JAX (tests).
      worker_buffer_size: batches each worker prepares ahead.

    Returns:
      A `grain.DataLoader`; ``iter(loader)`` yields dicts of numpy arrays and has ``get_state`` /
      ``set_state`` for checkpointing the position.
    """
    n = len(data_source)
    if n == 0:
        raise UserError(f"{data_source!r}: the split has no clips")
    if int(batch_clips) < 1:
        raise UserError(f"batch_clips must be >= 1, got {batch_clips}")
    shards = shard_options(shard_by_process, drop_remainder, process_index, process_count)
    if n < shards.shard_count:
        raise UserError(f"{data_source!r}: {n} clips cannot be shared by {shards.shard_count} processes")
    sampler = grain.samplers.IndexSampler(
        num_records=n, shard_options=shards, shuffle=shuffle, num_epochs=num_epochs, seed=int(seed))
    operations = [
        _ClipToModel(),
        grain.transforms.Batch(batch_size=int(batch_clips), drop_remainder=drop_remainder),
        _FlattenClips(),
    ]
    if worker_count:
        _absl_flags_parsed()
    source = data_source if isinstance(data_source, IndexedSource) else IndexedSource(data_source)
    return grain.DataLoader(data_source=source, sampler=sampler, operations=operations, shard_options=shards,
                            worker_count=int(worker_count), worker_buffer_size=int(worker_buffer_size))


def _absl_flags_parsed() -> None:
    """grain 0.2.18's worker processes read an absl flag, which fails unless absl parsed the command line
    (google/grain#1355, fixed after 0.2.18): without ``absl.app``, mark the flags parsed (their defaults)."""
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def iterator_state(iterator) -> bytes:
    """The position of a loader iterator (``iter(make_loader(...))``), as bytes to store in a checkpoint."""
    return iterator.get_state()


def restore_iterator(loader: grain.DataLoader, state: bytes):
    """A new iterator of `loader` that continues exactly where the one `state` came from stopped.

    Raises:
      UserError: the state does not belong to this loader (other data, sampler or worker count).
    """
    iterator = iter(loader)
    try:
        iterator.set_state(state)
    except (ValueError, KeyError) as e:
        raise UserError(f"cannot restore the input pipeline position: {str(e).splitlines()[0]}") from None
    return iterator


# ----------------------------------------------------------------------------------------------------------
# Evaluation: whole videos in order.


class Video(NamedTuple):
    """One whole video for evaluation, frames in time order, padded frames removed.

    Attributes:
      video_id: `Recording.name`.
      big: (N, B, B, 3) float32 standardized Big frames (uint8 if ``standardize=False``).
      small: (N, S, S, 3) float32.
      labels: "bvp", "resp", "hr_bpm", "rr_bpm": (N,) float32, "au": (N, 12) float32; NaN = unknown.
      fps: frames per second (Hz).
    """

    video_id: str
    big: np.ndarray
    small: np.ndarray
    labels: dict[str, np.ndarray]
    fps: float


def _read_block(data_source, start: int, stop: int) -> Sequence[dict]:
    getitems = getattr(data_source, "__getitems__", None)
    if getitems is not None:
        return getitems(list(range(start, stop)))
    return [data_source[i] for i in range(start, stop)]


def _assemble(clips: list[dict], standardize: bool) -> Video:
    mask = np.concatenate([np.asarray(c["frame_mask"], bool) for c in clips])
    big_u8 = np.concatenate([c["big"] for c in clips])[mask]
    first = clips[0]
    big = standardize_big(big_u8, float(first["big_mean"]), float(first["big_std"])) if standardize else big_u8
    small = np.concatenate([np.asarray(c["small"], np.float32) for c in clips])[mask]
    labels = {k: np.concatenate([np.asarray(c[k], np.float32) for c in clips])[mask]
              for k in ("au", *WAVE_LABELS, *RATE_LABELS) if k in first}
    return Video(_text(first["video_id"]), big, small, labels, float(first["fps"]))


def iter_videos(data_source, *, standardize: bool = True, block: int = 64) -> Iterator[Video]:
    """The videos of a split, each reassembled from its clips, in storage order.

    Reads the records sequentially; the builder writes a video's clips consecutively and in time order,
    and this is checked (``chunk_index`` 0, 1, ..., ``num_chunks`` - 1).

    Args:
      data_source: a split's records (``tfds_builders.data_source(builder, "test")``).
      standardize: return Big as standardized float32 (True) or as the stored uint8.
      block: records read per request.

    Yields:
      `Video` (video_id, big, small, labels, fps), which unpacks as a 5-tuple.

    Raises:
      UserError: a video's clips are not consecutive and complete.
    """
    clips: list[dict] = []
    done: set[str] = set()
    n = len(data_source)

    def bad(vid, problem):
        return UserError(f"{data_source!r}: video {vid!r}: {problem} (not a dataset written by "
                         "bigsmall_jax.datasets.tfds_builders?)")

    for start in range(0, n, block):
        for rec in _read_block(data_source, start, min(n, start + block)):
            vid = _text(rec["video_id"])
            if clips and vid != _text(clips[0]["video_id"]):
                raise bad(_text(clips[0]["video_id"]), f"has {len(clips)} of {int(clips[0]['num_chunks'])} clips")
            if vid in done:
                raise bad(vid, "clips are not consecutive")
            if int(rec["chunk_index"]) != len(clips):
                raise bad(vid, f"clip {int(rec['chunk_index'])} where clip {len(clips)} was expected")
            clips.append(rec)
            if len(clips) == int(rec["num_chunks"]):
                yield _assemble(clips, standardize)
                done.add(vid)
                clips = []
    if clips:
        raise bad(_text(clips[0]["video_id"]), f"has {len(clips)} of {int(clips[0]['num_chunks'])} clips")


__all__ = [
    "IndexedSource", "Video", "clip_to_model", "flatten_clips", "iter_videos", "iterator_state", "make_loader",
    "restore_iterator", "shard_options",
]
