"""Evaluating a checkpoint on a split of a prepared dataset, the paper's way.

Each video of the split is read back whole (`input_pipeline.iter_videos`), run through the jitted model in
batches of whole clips (`predict_videos`) and scored by `metrics.evaluate_videos`: HR and RR (MAE, RMSE,
MAPE, Pearson r, SNR, each with its standard error) and per-AU F1, precision, recall and accuracy.
`write_results` writes the metrics as JSON with the plots beside it (``python -m bigsmall_jax.evaluate``).

The library functions are what the trainer calls after training:

* `predict_videos(model, variables, videos)`: per-frame predictions of whole videos.
* `evaluate_split(model, variables, data_source)`: predictions + metrics of a split.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from bigsmall_jax.checkpoints.load import load_checkpoint
from bigsmall_jax.datasets.input_pipeline import iter_videos
from bigsmall_jax.datasets.prepare import open_prepared
from bigsmall_jax.datasets.tfds_builders import data_source
from bigsmall_jax.errors import UserError
from bigsmall_jax.evaluation import metrics, plots
from bigsmall_jax.files import staged_outputs, to_json
from bigsmall_jax.model import BigSmall, ModelConfig, build_model
from bigsmall_jax.runtime import Forward

log = logging.getLogger(__name__)

# Model output -> key of the prediction dicts `metrics.evaluate_videos` reads.
PRED_KEYS = {"bvp": "bvp_pred", "resp": "resp_pred", "au": "au_logits"}
LABEL_KEYS = {"bvp": "bvp_label", "resp": "resp_label", "au": "au_label"}


# ----------------------------------------------------------------------------------------------------------
# Running the model over whole videos.


@functools.lru_cache(maxsize=8)
def _forward(config: ModelConfig) -> Callable:
    """The eval-mode forward pass of a model config (`bigsmall_jax.runtime.Forward`): (variables, big, small)
    -> outputs dict.

    Cached per config (configs are frozen, hashable dataclasses) so that repeated evaluations, e.g. after
    every epoch of training, reuse the compiled function.
    """
    return Forward(build_model(config))


def _bucket(n_clips: int, batch_clips: int) -> int:
    """Clips per batch: `batch_clips`, or the next power of 2 >= n_clips when the video is shorter.

    Batches are padded to this size so that every video compiles at most log2(batch_clips) + 1 shapes.
    """
    return min(batch_clips, 1 << max(0, int(n_clips) - 1).bit_length())


def pad_to_segments(x: np.ndarray, n_segment: int) -> tuple[np.ndarray, int]:
    """Pads a (T, ...) array to a whole number of clips by repeating its last frame.

    Returns:
      (T + n_pad, ...) array and n_pad (0 <= n_pad < n_segment; no copy when n_pad is 0).
    """
    n_pad = (-x.shape[0]) % n_segment
    if n_pad:
        x = np.concatenate([x, np.repeat(x[-1:], n_pad, axis=0)])
    return x, n_pad


def _check_frames(config: ModelConfig, big: np.ndarray, small: np.ndarray, batch_clips: int) -> None:
    """Raises `UserError` for no frames, Big and Small of different lengths, frames of the wrong size for
    the model (Big (T, B, B, 3), Small (T, S, S, 3)), or fewer than one clip per batch."""
    t = int(big.shape[0])
    if t == 0:
        raise UserError("no frames to run the model on")
    if small.shape[0] != t:
        raise UserError(f"Big has {t} frames but Small has {small.shape[0]}")
    for name, x, size in (("Big", big, config.big_size), ("Small", small, config.small_size)):
        if tuple(x.shape[1:]) != (size, size, 3):
            raise UserError(f"{name} frames are {tuple(x.shape[1:])}, but the model takes ({size}, {size}, 3)")
    if int(batch_clips) < 1:
        raise UserError(f"batch_clips must be >= 1, got {batch_clips}")


def _zero_fill(x: np.ndarray, n: int) -> np.ndarray:
    """A (m, ...) batch padded with zero frames to (n, ...) (unchanged when m == n)."""
    fill = n - x.shape[0]
    return np.concatenate([x, np.zeros((fill, *x.shape[1:]), x.dtype)]) if fill else x


def predict_frames(
    model: BigSmall,
    variables,
    big: np.ndarray,
    small: np.ndarray,
    batch_clips: int = 16,
    big_transform: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: bool | None = False,
    desc: str = "model",
    forward: Callable | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Runs the model over every frame of one video, in batches of whole clips.

    The video is padded to a whole number of clips of ``n_segment`` frames by repeating its last frame;
    the outputs of the padded frames are dropped again. Each batch is padded with zero clips to a fixed
    size (clips are independent in eval mode) so that the jitted model compiles once per batch size.

    Args:
      model: a `BigSmall` module; only its config is used.
      variables: its variables ({"params": ...}), unreplicated.
      big: (T, B, B, 3) Big frames: standardized float32, or anything `big_transform` turns into them.
      small: (T, S, S, 3) float32 diff-normalized Small frames.
      batch_clips: clips per forward pass.
      big_transform: applied to each batch's Big frames on the host before the forward pass (e.g.
        `preprocess.standardize_big` on uint8 frames, to keep the video compact in memory).
      progress: show a tqdm bar over batches (None: only on a terminal).
      desc: the bar's label.
      forward: runs a batch, ``forward(variables, big, small)`` -> outputs dict (default: the jitted model,
        `bigsmall_jax.runtime.Forward`; `bigsmall_jax.inference.runners.OnnxRunner` for ONNX Runtime).

    Returns:
      ({"au": (T, n_au) logits, "bvp": (T,), "resp": (T,)} float32 numpy arrays, only the model's heads;
      n_pad, the number of frames added (and dropped) to fill the last clip).

    Raises:
      UserError: no frames, Big and Small of different lengths, or frames of the wrong size for the model.
    """
    _check_frames(model.config, big, small, batch_clips)
    return predict_stream(model, variables, [(big, small)], int(big.shape[0]), batch_clips, big_transform,
                          progress, desc, forward)


def _take(pending: list[np.ndarray], n: int) -> np.ndarray:
    """Removes the first `n` frames from a list of (m_i, ...) arrays and returns them as one array (a view
    when they lie in one array)."""
    if len(pending[0]) >= n:
        out, pending[0] = pending[0][:n], pending[0][n:]
    else:
        parts, got = [], 0
        while got < n:
            part = pending[0][: n - got]
            parts.append(part)
            got += len(part)
            pending[0] = pending[0][len(part):]
            if not len(pending[0]):
                pending.pop(0)
        out = np.concatenate(parts)
    if pending and not len(pending[0]):
        pending.pop(0)
    return out


def predict_stream(
    model: BigSmall,
    variables,
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
    num_frames: int,
    batch_clips: int = 16,
    big_transform: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: bool | None = False,
    desc: str = "model",
    forward: Callable | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """`predict_frames` over a video that arrives in consecutive blocks, holding at most two batches of
    model inputs at a time.

    Args:
      model, variables, batch_clips, big_transform, progress, desc, forward: as in `predict_frames`.
      blocks: (big, small) pairs of consecutive frames, (n, B, B, 3) and (n, S, S, 3), any n >= 1 (the
        same in both), in time order.
      num_frames: T, the frames of all blocks together (it fixes the batch size, as `predict_frames` does).

    Returns:
      As `predict_frames`: the outputs equal those of one call on the whole arrays.

    Raises:
      UserError: as `predict_frames`; blocks that do not add up to `num_frames`.
    """
    config = model.config
    n_seg, t = config.n_segment, int(num_frames)
    n_pad = (-t) % n_seg
    per_batch = _bucket((t + n_pad) // n_seg, int(batch_clips)) * n_seg
    forward = forward or _forward(config)
    # Outputs are copied into arrays allocated up front as batches complete: no allocation outlives a batch
    # (long-lived small buffers between the large ones made the heap grow with the video's length).
    result = {task: np.empty((t + n_pad, n), np.float32) for task, n in config.heads}
    in_flight: list[tuple[int, dict[str, jax.Array]]] = []  # (first frame, outputs) of dispatched batches
    done = 0
    pending: list[list[np.ndarray]] = [[], []]  # big, small frames not yet run
    n_pending = seen = 0

    def run(n: int) -> None:
        nonlocal done
        b, s = (_take(p, n) for p in pending)
        if len(in_flight) >= 2:  # bound the inputs waiting in the dispatch queue
            collect(in_flight.pop(0))
        b = _zero_fill(np.asarray(big_transform(b) if big_transform is not None else b, np.float32), per_batch)
        s = _zero_fill(np.asarray(s, np.float32), per_batch)
        # Dispatch is asynchronous: the next batch is prepared on the host while this one runs.
        in_flight.append((done, forward(variables, b, s)))
        done += n

    def collect(batch: tuple[int, dict[str, jax.Array]]) -> None:
        start, out = batch
        for task in result:
            y = np.asarray(out[task])
            n = min(len(y), t + n_pad - start)
            result[task][start : start + n] = y[:n]

    bar = tqdm(total=-(-(t + n_pad) // per_batch), desc=desc, unit="batch", leave=False,
               disable=None if progress is None else not progress)
    for big, small in blocks:
        if len(big) != len(small):
            raise UserError(f"a block has {len(big)} Big frames but {len(small)} Small frames")
        if not len(big):
            continue
        _check_frames(config, big, small, batch_clips)
        seen += len(big)
        if seen > t:
            raise UserError(f"the blocks hold more than the {t} frames announced")
        pending[0].append(big)
        pending[1].append(small)
        n_pending += len(big)
        while n_pending >= per_batch:
            run(per_batch)
            n_pending -= per_batch
            bar.update()
    if seen != t:
        raise UserError(f"the blocks hold {seen} frames, not the {t} announced")
    if n_pad:  # the last frame repeated to fill the last clip
        for p in pending:
            p.append(np.repeat(p[-1][-1:], n_pad, axis=0))
        n_pending += n_pad
    if n_pending:
        run(n_pending)
        bar.update()
    bar.close()
    for batch in in_flight:
        collect(batch)
    return {task: y[:t, 0] if task != "au" else y[:t] for task, y in result.items()}, n_pad


def _label(labels: Mapping[str, np.ndarray], key: str, t: int, video_id: str) -> np.ndarray | None:
    """A per-frame label, or None when the video has none (absent, or NaN on every frame)."""
    value = labels.get(key)
    if value is None:
        return None
    value = np.asarray(value, np.float32)
    if value.shape[0] != t:
        raise UserError(f"video {video_id}: label {key!r} has {value.shape[0]} frames, the video {t}")
    if key != "au" and value.ndim == 2 and value.shape[1] == 1:
        value = value[:, 0]
    return None if np.all(np.isnan(value)) else value


def predict_videos(model: BigSmall, variables, videos: Iterable, batch_clips: int = 16,
                   progress: bool | None = None) -> list[dict]:
    """Per-frame predictions of whole videos, with their labels, as `metrics.evaluate_videos` expects.

    Args:
      model: a `BigSmall` module.
      variables: its variables, unreplicated (on one device or the host).
      videos: iterable of per-video ``(video_id, big, small, labels, fps)`` in frame order (e.g.
        `input_pipeline.iter_videos`): big (T, B, B, 3) standardized float32, small (T, S, S, 3) float32,
        labels a dict with any of "bvp", "resp" ((T,) diff-normalized, NaN = unknown) and "au" ((T, 12),
        NaN = missing); other keys are ignored.
      batch_clips: clips per forward pass.
      progress: tqdm bar over videos (None: only on a terminal).

    Returns:
      One dict per video: "video_id", "fps", "num_frames", "n_padded_frames" (frames repeated to fill the
      last clip, then dropped), and for each head of the model its prediction — "bvp_pred", "resp_pred"
      (T,) float32, "au_logits" (T, n_au) — with its label — "bvp_label", "resp_label", "au_label" —
      when the video has one. Keys the model cannot give are absent.
    """
    results = []
    for video in tqdm(videos, desc="predicting", unit="video", disable=None if progress is None else not progress):
        video_id, big, small, labels, fps = video
        video_id = str(video_id)
        try:
            outputs, n_pad = predict_frames(model, variables, big, small, batch_clips)
        except UserError as e:
            raise UserError(f"video {video_id}: {e}") from None
        t = int(big.shape[0])
        entry: dict[str, Any] = {"video_id": video_id, "fps": float(fps), "num_frames": t, "n_padded_frames": n_pad}
        for task, y in outputs.items():
            entry[PRED_KEYS[task]] = y
            label = _label(labels or {}, task, t, video_id)
            if label is not None:
                entry[LABEL_KEYS[task]] = label
        results.append(entry)
    if not results:
        raise UserError("no videos to evaluate")
    return results


def evaluate_split(model: BigSmall, variables, data_source, batch_clips: int = 16,
                   window_s: float | None = None, progress: bool | None = None,
                   method: str = "fft") -> tuple[dict, list[dict]]:
    """Predicts every video of a prepared split and scores it with `metrics.evaluate_videos`.

    Args:
      model, variables: the model to evaluate (variables unreplicated).
      data_source: a split's records (``tfds_builders.data_source(builder, "test")``).
      batch_clips: clips per forward pass.
      window_s: None: one rate per video (the paper); else rates over windows of this many seconds.
      progress: tqdm bar over videos (None: only on a terminal).
      method: "fft" (the periodogram peak, the paper), "fine" (the same peak on a 16x finer grid) or "peak"
        (the mean peak interval; no frequency grid).

    Returns:
      (metrics, predictions): the JSON-serialisable dict of `metrics.evaluate_videos` (``hr_mae``,
      ``rr_mae``, ``au_f1_mean``, ..., ``per_video``) and the per-video prediction dicts of
      `predict_videos` (numpy arrays, e.g. for plots).
    """
    predictions = predict_videos(model, variables, iter_videos(data_source), batch_clips, progress)
    return metrics.evaluate_videos(predictions, window_s=window_s, method=method), predictions


# ----------------------------------------------------------------------------------------------------------
# Prepared datasets.


def load_split(dataset: str, data_dir: str | os.PathLike, split: str = "test", config: str | None = None):
    """(builder, data source) of one split of a prepared dataset (read-only; nothing is built)."""
    builder = open_prepared(dataset, data_dir, config)
    return builder, data_source(builder, split)


# ----------------------------------------------------------------------------------------------------------
# Report: table and plots.


def _num(x, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _pm(results: Mapping, key: str, digits: int = 2) -> str:
    value, se = results.get(key), results.get(f"{key}_se")
    return _num(value, digits) if se is None else f"{_num(value, digits)} ± {_num(se, digits)}"


def format_table(results: Mapping) -> str:
    """The metrics of `metrics.evaluate_videos` as a plain-text table (rates, then AUs)."""
    lines = []
    rate_rows = [(kind, unit) for kind, unit in (("hr", "bpm"), ("rr", "breaths/min"))
                 if results.get(f"{kind}_n")]
    if rate_rows:
        header = f"{'':4} {'n':>4} {'MAE':>14} {'RMSE':>14} {'MAPE %':>14} {'Pearson r':>14} {'SNR dB':>14}  units"
        lines += [header, "-" * len(header)]
        for kind, unit in rate_rows:
            cells = [_pm(results, f"{kind}_{m}", 3 if m == "pearson" else 2)
                     for m in ("mae", "rmse", "mape", "pearson", "snr")]
            lines.append(f"{kind.upper():4} {results[f'{kind}_n']:>4} " + " ".join(f"{c:>14}" for c in cells)
                         + f"  {unit}")
    if results.get("au_f1"):
        if lines:
            lines.append("")
        header = f"{'AU':6} {'F1':>7} {'prec.':>7} {'recall':>7} {'acc.':>7} {'support':>8}"
        lines += [header, "-" * len(header)]
        support = results.get("au_support", {})
        for au in results["au_f1"]:
            cells = [_num(results[f"au_{m}"][au], 3) for m in ("f1", "precision", "recall", "accuracy")]
            lines.append(f"{au:6} " + " ".join(f"{c:>7}" for c in cells) + f" {support.get(au, ''):>8}")
        lines.append("-" * len(header))
        means = [_num(results.get(f"au_{m}_mean"), 3) for m in ("f1", "precision", "recall", "accuracy")]
        lines.append(f"{'mean':6} " + " ".join(f"{c:>7}" for c in means))
    if not lines:
        return "nothing to score: the split has no labels for the model's outputs"
    lines.insert(0, f"{results.get('num_videos', '?')} videos"
                    + (f", {results['window_s']} s windows" if results.get("window_s") else ""))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# What ``python -m bigsmall_jax.evaluate`` runs.


def evaluate_checkpoint(checkpoint: str | os.PathLike, dataset: str, data_dir: str | os.PathLike,
                        split: str = "test", config: str | None = None, batch_clips: int = 16,
                        window_s: float | None = None, method: str = "fft") -> tuple[dict, list[dict]]:
    """Loads a checkpoint and scores it on one split of a prepared dataset (`evaluate_split`).

    Args:
      checkpoint: model checkpoint directory, training workdir, or PyTorch .pth.
      dataset, data_dir, config: the prepared dataset (`find_prepared`).
      split: the split to evaluate.
      batch_clips: clips per forward pass.
      window_s: None: one rate per video; else rates over windows of this many seconds.
      method: how rates are read from the waves (`signals.RATE_METHODS`, `evaluate_split`).

    Returns:
      (metrics, predictions): the metrics of `evaluate_split` with ``checkpoint``, ``dataset``, ``config``,
      ``split`` and ``model`` (the model config as a dict) added, and the per-video predictions.
    """
    model, variables = load_checkpoint(checkpoint)
    builder, source = load_split(dataset, data_dir, split, config)
    config_name = builder.builder_config.name if builder.builder_config else None
    log.info("evaluating %s on %s/%s split %s (%d clips)", checkpoint, builder.name, config_name or "?", split,
             len(source))
    results, predictions = evaluate_split(model, variables, source, batch_clips, window_s, progress=None,
                                          method=method)
    results = {
        **results,
        "checkpoint": os.fspath(checkpoint),
        "dataset": builder.name,
        "config": config_name,
        "split": split,
        "model": model.config.to_dict(),
    }
    return results, predictions


def write_results(results: dict, predictions: Sequence[Mapping], output: Path, with_plots: bool = True) -> list[Path]:
    """Writes the metrics JSON (strict: NaN as null) to `output` and the plots (`plots.save_plots`) beside it.

    Everything is written into a temporary folder and moved into place at the end, the JSON last
    (`bigsmall_jax.files.staged_outputs`): on failure nothing is left behind. Adds ``plots`` (the PNG
    names) to `results`.

    Returns:
      The paths of the plots written.
    """
    with staged_outputs(output.parent) as tmp_dir:
        plot_paths = plots.save_plots(results, predictions, tmp_dir, output.stem) if with_plots else []
        results["plots"] = [p.name for p in plot_paths]
        (tmp_dir / output.name).write_text(to_json(results, sort_keys=False, allow_nan=False))
    return [output.parent / p.name for p in plot_paths]


__all__ = [
    "evaluate_checkpoint", "evaluate_split", "format_table", "load_split", "pad_to_segments",
    "predict_frames", "predict_videos", "write_results",
]
