"""Input pipeline: grain loaders of model-ready batches, and an ordered per-video reader for evaluation.

Training (`make_loader`): a grain `DataLoader` whose records are whole batches (`ClipBatches`): this
process's share of the clips, shuffled per epoch by seed, cut into batches of clips. A TFDS split is
decoded once into memory-mapped columns (`bigsmall_jax.datasets.columns`) and each batch is one gather
from them, with no per-clip Python; without columns a batch is read with one request (`read_raw`:
ArrayRecord's batched read) and decoded with array operations (`decode_examples`). A
batch of ``B = batch_clips`` clips of ``T = n_segment`` frames is a dict of numpy arrays, frames of a
clip consecutive (the layout `bigsmall_jax.model.bigsmall` expects). Big frames stay uint8 as stored,
with their video's statistics; the device standardizes them inside the jitted step
(`bigsmall_jax.datasets.device_batch.device_big`):

  ============ ======================= ================================================================
  key          shape / dtype           meaning
  ============ ======================= ================================================================
  big          (B*Tb, 144, 144, 3) u8  stored Big frames; Tb = 1 (the first frame of each clip, all the
                                       model reads with Big downsampling) with ``big_first_only``, else T
  big_mean     (B*Tb,) f32             the video's Big mean (model input = (big - mean) / std)
  big_std      (B*Tb,) f32             the video's Big standard deviation
  small        (B*T, 9, 9, 3) f32      diff-normalized Small frames
  au           (B*T, 12) f32           AU labels in {0, 1}; 0 where ``au_mask`` is 0
  au_mask      (B*T, 12) f32           1 where the AU label is known and the frame is real
  bvp, resp    (B*T,) f32              diff-normalized waves; 0 where the mask is 0
  bvp_mask     (B*T,) f32              1 where the label is known and the frame is real (same for resp)
  frame_mask   (B*T,) f32              0 for frames padded after a video's end
  record_index (B*T,) int32            the clip's index in the data source (for bookkeeping / tests)
  ============ ======================= ================================================================

BigSmall with Big downsampling then sends about 66 KB per clip to the devices instead of 750 KB of
standardized float32 frames (`batch_bytes_per_clip`), as three arrays (`bigsmall_jax.datasets.device_batch`).

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

from bigsmall_jax.datasets.columns import open_columns
from bigsmall_jax.datasets.preprocess import standardize_big
from bigsmall_jax.errors import UserError

log = logging.getLogger(__name__)

WAVE_LABELS: tuple[str, ...] = ("bvp", "resp")
# How grain reads the batches of a loader (in each worker process, or in this one): one thread a few batches
# ahead. Grain's defaults (16 threads, 500 records ahead) suit small records; with whole batches as records
# they buffered up to 500 batches (about 500 MB for BigSmall's 16-clip batches), took 180-630 ms to the
# first batch of every epoch, and delivered less (threads contending for the GIL on 2 cores).
READ_OPTIONS = grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)
RATE_LABELS: tuple[str, ...] = ("hr_bpm", "rr_bpm")


# ----------------------------------------------------------------------------------------------------------
# Decoding clips into model-ready arrays.


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _labels(au, bvp, resp, frame_mask) -> dict[str, np.ndarray]:
    """Labels with NaN (unknown) set to 0, and their masks (known and a real frame), for any leading shape.

    Args:
      au: (..., T, 12); bvp, resp: (..., T); frame_mask: (..., T) f32 or bool.
    """
    real = np.asarray(frame_mask) > 0
    out = {}
    for kind, value in (("au", au), ("bvp", bvp), ("resp", resp)):
        value = np.asarray(value, np.float32)
        known = np.isfinite(value)
        mask = known & (real[..., None] if value.ndim == real.ndim + 1 else real)
        out[kind] = np.where(known, value, np.float32(0.0)).astype(np.float32)
        out[f"{kind}_mask"] = mask.astype(np.float32)
    return out


def clip_to_model(record: dict[str, Any], big_first_only: bool = False) -> dict[str, np.ndarray]:
    """One decoded clip -> model-ready arrays of its T frames (not yet batched); Big stays uint8.

    Args:
      record: a decoded example (see `bigsmall_jax.datasets.tfds_builders`), optionally with "record_index".
      big_first_only: keep only the clip's first Big frame (what a model with Big downsampling reads).

    Returns:
      {"big": (Tb, B, B, 3) uint8 (Tb = 1 with `big_first_only`, else T), "big_mean", "big_std": (Tb,) f32,
      "small": (T, S, S, 3) f32, "au"/"au_mask": (T, 12) f32, "bvp", "bvp_mask", "resp", "resp_mask",
      "frame_mask": (T,) f32, "record_index": (T,) int32}.
    """
    frame_mask = np.asarray(record["frame_mask"]).astype(np.float32)
    t = frame_mask.shape[0]
    big = np.asarray(record["big"])
    big = big[:1] if big_first_only else big
    rows = big.shape[0]
    return {
        "big": big,
        "big_mean": np.full((rows,), record["big_mean"], np.float32),
        "big_std": np.full((rows,), record["big_std"], np.float32),
        "small": np.asarray(record["small"], np.float32),
        "frame_mask": frame_mask,
        "record_index": np.full((t,), int(record.get("record_index", -1)), np.int32),
        **_labels(record["au"], record["bvp"], record["resp"], frame_mask),
    }


def flatten_clips(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(B, T, ...) arrays -> (B*T, ...): the frames of each clip stay consecutive."""
    return {k: v.reshape((v.shape[0] * v.shape[1], *v.shape[2:])) for k, v in batch.items()}


def tfds_example_layout(source) -> tuple[int, int, int] | None:
    """(T, Big side, Small side) of a TFDS source of BigSmall clips that can hand out raw records, else None."""
    info = getattr(source, "dataset_info", None)
    raw = getattr(source, "data_source", None)
    features = getattr(info, "features", None)
    if raw is None or features is None or not hasattr(raw, "__getitems__") or "big" not in features:
        return None
    big, small = features["big"].shape, features["small"].shape
    return int(big[0]), int(big[1]), int(small[1])


def read_raw(source, indices: Sequence[int]) -> list[bytes]:
    """The serialized records at `indices` of a TFDS ArrayRecord source, read in one batched request."""
    return list(source.data_source.__getitems__([int(i) for i in indices]))


def decode_examples(raw: Sequence[bytes], n_segment: int, big_size: int, small_size: int,
                    big_first_only: bool = False) -> dict[str, np.ndarray]:
    """Serialized clips (tf.train.Example protos as `tfds_builders` writes them) -> one batch, (B*T, ...) arrays.

    Each clip's protobuf is parsed once (C++); the arrays are joined and reshaped for the whole batch, and only
    the Big frames the model reads are copied (the first of each clip with `big_first_only`). The result
    equals stacking `clip_to_model` of TFDS's own decoding of each clip (tested).

    Args:
      raw: B serialized examples.
      n_segment, big_size, small_size: T and the frame sides the dataset was built with.
      big_first_only: keep the first Big frame of each clip only.

    Returns:
      The batch layout of the module docstring, without "record_index".
    """
    from tensorflow_datasets.proto import tf_example_pb2  # noqa: PLC0415 (TFDS's own compiled proto)

    feats = [tf_example_pb2.Example.FromString(r).features.feature for r in raw]
    n, t = len(feats), n_segment
    tb = 1 if big_first_only else t
    frame = big_size * big_size * 3
    big = np.frombuffer(b"".join([f["big"].bytes_list.value[0][: tb * frame] for f in feats]), np.uint8)
    small = np.frombuffer(b"".join([f["small"].bytes_list.value[0] for f in feats]), np.float32)

    def floats(key):
        return np.array([f[key].float_list.value for f in feats], np.float32)

    frame_mask = np.array([f["frame_mask"].int64_list.value for f in feats], np.float32)
    stats = {k: np.repeat(floats(k)[:, 0], tb) for k in ("big_mean", "big_std")}
    labels = _labels(floats("au").reshape(n, t, -1), floats("bvp"), floats("resp"), frame_mask)
    return {"big": big.reshape(n * tb, big_size, big_size, 3), **stats,
            "small": small.reshape(n * t, small_size, small_size, 3).copy(),
            "frame_mask": frame_mask.reshape(n * t),
            **{k: v.reshape(n * t, *v.shape[2:]) for k, v in labels.items()}}


def batch_bytes_per_clip(batch, n_clips: int) -> float:
    """Bytes of a batch (host or device arrays: what is sent to the devices) per clip."""
    return sum(v.nbytes for v in batch.values()) / n_clips


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

    def __repr__(self) -> str:
        return f"IndexedSource({_source_name(self._source)}, {len(self)} records)"


def _source_name(source) -> str:
    info = getattr(source, "dataset_info", None)
    if info is not None:
        return f"{info.full_name}:{getattr(source, 'split', '?')}"
    return type(source).__name__


# ----------------------------------------------------------------------------------------------------------
# Training loader.


def shard_range(n: int, shard_index: int, shard_count: int, drop_remainder: bool) -> range:
    """The records of shard `shard_index` of `shard_count`: contiguous, len // count each with
    `drop_remainder` (up to count - 1 records never read), else the first len % count shards get one more."""
    if drop_remainder:
        per = n // shard_count
        return range(shard_index * per, (shard_index + 1) * per)
    per, extra = divmod(n, shard_count)
    start = shard_index * per + min(shard_index, extra)
    return range(start, start + per + (shard_index < extra))


class ClipBatches:
    """Random-access batches of clips: item k is the k-th batch of this shard's record stream.

    The stream is the shard's records in a fresh order every epoch (a permutation drawn from (seed, epoch))
    or in storage order, epochs one after the other; batches run across epoch ends. Being random-access by
    batch, it is a grain data source: grain's sampler, worker processes and checkpointable position then
    work per batch, and each batch is one gather from the split's decoded columns (`columns.open_columns`),
    or read and decoded at once (`read_raw`, `decode_examples`) where there are none.

    Args:
      source: a split's records (a TFDS ArrayRecord source, or any sequence of decoded records).
      batch_clips: clips per batch.
      shuffle, seed: a new order each epoch, drawn from (seed, epoch).
      num_epochs: epochs in the stream (None: as many as asked for).
      drop_remainder: drop the last incomplete batch (with finite epochs).
      shard: (index, count) of this process's share (`shard_range`, with `drop_remainder`).
      big_first_only: keep the first Big frame of each clip only (`clip_to_model`).
      columns: gather batches from the split's decoded columns (`bigsmall_jax.datasets.columns`, built on
        first use) rather than decoding every batch from its records.
    """

    def __init__(self, source, *, batch_clips: int, shuffle: bool, seed: int, num_epochs: int | None,
                 drop_remainder: bool, shard: tuple[int, int], big_first_only: bool, columns: bool = True):
        self._source = source
        self._records = shard_range(len(source), shard[0], shard[1], drop_remainder)
        self._batch, self._shuffle, self._seed = int(batch_clips), bool(shuffle), int(seed)
        self._epochs, self._first_only, self._shard = num_epochs, bool(big_first_only), tuple(shard)
        self._layout = tfds_example_layout(source)
        self._columns = (open_columns(source, self._layout, self._first_only, progress=False)
                         if self._layout is not None and columns else None)
        total = len(self._records) * num_epochs if num_epochs is not None else None
        if total is None:
            self._len = 2**62
        else:
            self._len = total // self._batch if drop_remainder else -(-total // self._batch)
        self._total = total
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self._len

    def _order(self, epoch: int) -> np.ndarray:
        """The record indices of one epoch, in the order they are read."""
        if epoch not in self._orders:
            records = np.arange(self._records.start, self._records.stop)
            if self._shuffle:
                records = np.random.default_rng([self._seed, epoch]).permutation(records)
            self._orders = {epoch: records}  # batches are read in order: one epoch at a time is enough
        return self._orders[epoch]

    def indices(self, k: int) -> np.ndarray:
        """The record indices of batch k."""
        m = len(self._records)
        stop = (k + 1) * self._batch if self._total is None else min((k + 1) * self._batch, self._total)
        positions = np.arange(k * self._batch, stop)
        epochs = positions // m
        return np.concatenate([self._order(int(e))[positions[epochs == e] % m] for e in np.unique(epochs)])

    def __getitem__(self, k: int) -> dict[str, np.ndarray]:
        if not 0 <= k < self._len:
            raise IndexError(f"batch {k} of {self._len}")
        idx = self.indices(int(k))
        if self._columns is not None:
            batch = self._columns.gather(idx)
        elif self._layout is not None:
            batch = decode_examples(read_raw(self._source, idx), *self._layout, big_first_only=self._first_only)
        else:
            clips = [clip_to_model({**self._source[int(i)], "record_index": int(i)}, self._first_only) for i in idx]
            batch = flatten_clips({k: np.stack([c[k] for c in clips]) for k in clips[0]})
        t = batch["frame_mask"].shape[0] // len(idx)
        batch["record_index"] = np.repeat(idx.astype(np.int32), t)
        return batch

    def __repr__(self) -> str:  # grain checks it when restoring an iterator state: keep it stable
        return (f"ClipBatches({_source_name(self._source)}, {len(self._source)} records, shard {self._shard}, "
                f"batch {self._batch}, shuffle {self._shuffle}, seed {self._seed}, epochs {self._epochs}, "
                f"first Big frame only {self._first_only})")


def _shard(shard_by_process: bool, process_index: int | None, process_count: int | None) -> tuple[int, int]:
    """(index, count) of this process's share: every process reads a disjoint part (or, with
    `shard_by_process` False, everything); `process_index` / `process_count` simulate a process (tests)."""
    if not shard_by_process:
        return 0, 1
    if process_index is None and process_count is None:
        import jax  # noqa: PLC0415 (only a sharded loader asks JAX)

        return jax.process_index(), jax.process_count()
    if process_index is None or process_count is None:
        raise ValueError("give both process_index and process_count, or neither")
    return int(process_index), int(process_count)


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
    big_first_only: bool = False,
    columns: bool = True,
) -> grain.DataLoader:
    """A grain loader of model-ready batches (see the module docstring for the batch layout).

    Args:
      data_source: a split's records, e.g. ``tfds_builders.data_source(builder, "train")``.
      batch_clips: clips per batch on this process (a batch has batch_clips * n_segment frames).
      shuffle: shuffle the records globally each epoch (a different order every epoch).
      seed: shuffling seed (0 <= seed < 2**32); the same seed gives the same batches.
      num_epochs: passes over the data; None repeats forever (batches then run across epoch ends).
      worker_count: grain worker processes (0: in this process); the batches do not depend on it.
      drop_remainder: drop the last incomplete batch, and shard records evenly between processes.
      shard_by_process: each JAX process reads a disjoint part of the records.
      process_index, process_count: simulate a process instead of asking JAX (tests).
      worker_buffer_size: batches each worker prepares ahead.
      big_first_only: send only the first Big frame of each clip (a model with Big downsampling,
        `BigSmall.big_per_clip`).
      columns: read batches from the split's decoded columns (`bigsmall_jax.datasets.columns`; built on first
        use beside a TFDS dataset's files) instead of decoding each batch's records.

    Returns:
      A `grain.DataLoader`; ``iter(loader)`` yields dicts of numpy arrays and has ``get_state`` /
      ``set_state`` for checkpointing the position.
    """
    n = len(data_source)
    if n == 0:
        raise UserError(f"{data_source!r}: the split has no clips")
    if int(batch_clips) < 1:
        raise UserError(f"batch_clips must be >= 1, got {batch_clips}")
    shard = _shard(shard_by_process, process_index, process_count)
    if n < shard[1]:
        raise UserError(f"{data_source!r}: {n} clips cannot be shared by {shard[1]} processes")
    batches = ClipBatches(data_source, batch_clips=int(batch_clips), shuffle=shuffle, seed=int(seed),
                          num_epochs=num_epochs, drop_remainder=drop_remainder, shard=shard,
                          big_first_only=big_first_only, columns=columns)
    if len(batches) == 0:
        raise UserError(f"{data_source!r}: fewer clips than one batch of {batch_clips}")
    sampler = grain.samplers.IndexSampler(num_records=len(batches), shard_options=grain.sharding.NoSharding(),
                                          shuffle=False, num_epochs=1, seed=0)
    if worker_count:
        absl_flags_parsed()
    return grain.DataLoader(data_source=batches, sampler=sampler, operations=(), worker_count=int(worker_count),
                            worker_buffer_size=int(worker_buffer_size), read_options=READ_OPTIONS)


def absl_flags_parsed() -> None:
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
    "ClipBatches", "IndexedSource", "Video", "batch_bytes_per_clip", "clip_to_model", "decode_examples",
    "flatten_clips", "iter_videos", "iterator_state", "make_loader", "read_raw", "restore_iterator", "shard_range",
]
