"""Evaluation metrics of the BigSmall paper: rate errors, AU scores and whole test sets.

Rates come from waves by the paper's protocol (`bigsmall_jax.evaluation.signals`); label rates are
computed from the label waves with exactly the same procedure. Errors over a set of videos (or fixed
windows) are the MAE, RMSE, MAPE and Pearson correlation of predicted against label rates, each with
its standard error, and the mean SNR of the predicted waves around the label's rate. AUs are scored
frame by frame (sigmoid, threshold 0.5) with per-AU F1, precision, recall and accuracy.

All waves are 1-D numpy arrays of shape (T,) sampled at ``fs`` Hz; all rates are per minute.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.special
import scipy.stats
from tqdm import tqdm

from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.errors import UserError
from bigsmall_jax.evaluation.signals import as_wave, check_method, process_wave, rate_of_processed, snr_db, wave_to_rate

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Rates over videos and windows
# --------------------------------------------------------------------------------------------------


def window_slices(num_samples: int, fs: float, window_s: float | None) -> list[slice]:
    """Non-overlapping windows of ``window_s`` seconds over a wave of ``num_samples`` samples.

    ``window_s=None`` is the whole wave (per-video evaluation, the paper's setting). A trailing
    remainder shorter than a full window is dropped, except that a wave shorter than one window is
    scored as a single window.
    """
    if window_s is None:
        return [slice(0, num_samples)]
    if window_s <= 0:
        raise UserError(f"window_s must be positive, got {window_s}")
    size = int(round(window_s * fs))
    if size >= num_samples or size < 1:
        return [slice(0, num_samples)]
    return [slice(start, start + size) for start in range(0, num_samples - size + 1, size)]


def windowed_rates(
    pred,
    label,
    fs: float,
    kind: str = "hr",
    window_s: float | None = None,
    diff_normalized: bool = True,
    method: str = "fft",
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and label rates per window (see `window_slices`) of one video.

    Args:
      pred, label: (T,) predicted and label waves of the same length, sampled at ``fs`` Hz.
      kind, diff_normalized, method: as in `wave_to_rate`.
      window_s: window length in seconds, or None for the whole video.

    Returns:
      (pred_rates, label_rates), each (num_windows,) float64, per minute.
    """
    p = as_wave(pred, "prediction")
    y = as_wave(label, "label")
    if p.shape != y.shape:
        raise UserError(f"prediction has {p.shape[0]} samples but label has {y.shape[0]}")
    slices = window_slices(p.shape[0], fs, window_s)
    pred_rates = [wave_to_rate(p[s], fs, kind, diff_normalized, method) for s in slices]
    label_rates = [wave_to_rate(y[s], fs, kind, diff_normalized, method) for s in slices]
    return np.asarray(pred_rates, dtype=np.float64), np.asarray(label_rates, dtype=np.float64)


def rate_errors(pred_rates, label_rates) -> dict[str, float]:
    """Errors of predicted against label rates, each with its standard error.

    Pairs where either rate is NaN (e.g. `rate_peaks` found < 2 peaks) are left out; ``n`` counts
    the pairs used. Standard errors use the population std (ddof=0), as the published evaluation
    does: ``mae_se = std|e| / sqrt(n)``, ``mape_se`` likewise on the percentage errors,
    ``rmse_se = std(e^2) / (sqrt(n) * 2 rmse)`` (delta method), ``pearson_se = sqrt((1 - r^2)/(n - 2))``.
    Undefined values (Pearson with n < 3 or constant rates) are NaN.

    Args:
      pred_rates, label_rates: (N,) rates per minute.

    Returns:
      dict with ``n, mae, mae_se, rmse, rmse_se, mape, mape_se, pearson, pearson_se, mean_error``
      (``mean_error`` = mean of pred - label, the Bland-Altman bias); MAPE in percent.
    """
    p = np.asarray(pred_rates, dtype=np.float64).ravel()
    y = np.asarray(label_rates, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise UserError(f"{p.shape[0]} predicted rates but {y.shape[0]} label rates")
    keep = np.isfinite(p) & np.isfinite(y)
    p, y = p[keep], y[keep]
    n = int(p.shape[0])
    nan = float("nan")
    out = dict(n=n, mae=nan, mae_se=nan, rmse=nan, rmse_se=nan, mape=nan, mape_se=nan,
               pearson=nan, pearson_se=nan, mean_error=nan)
    if n == 0:
        return out
    err = p - y
    abs_err = np.abs(err)
    sq_err = err**2
    root_n = math.sqrt(n)
    out["mean_error"] = float(np.mean(err))
    out["mae"] = float(np.mean(abs_err))
    out["mae_se"] = float(np.std(abs_err) / root_n)
    rmse = float(np.sqrt(np.mean(sq_err)))
    out["rmse"] = rmse
    out["rmse_se"] = float(np.std(sq_err) / (root_n * 2.0 * rmse)) if rmse > 0 else 0.0
    nonzero = y != 0
    if np.any(nonzero):
        pct = abs_err[nonzero] / np.abs(y[nonzero]) * 100.0
        out["mape"] = float(np.mean(pct))
        out["mape_se"] = float(np.std(pct) / math.sqrt(pct.shape[0]))
    if n >= 3 and np.std(p) > 0 and np.std(y) > 0:
        r = float(np.corrcoef(p, y)[0, 1])
        out["pearson"] = r
        out["pearson_se"] = float(math.sqrt(max(0.0, 1.0 - r * r) / (n - 2)))
    return out


# --------------------------------------------------------------------------------------------------
# Action units
# --------------------------------------------------------------------------------------------------


def au_metrics(logits_or_probs, labels, threshold: float = 0.5, from_logits: bool = True) -> dict:
    """Frame-level AU detection scores, per AU and averaged.

    A frame is predicted positive for an AU when its probability (the sigmoid of the logit when
    ``from_logits``) is >= ``threshold``. Frames whose label is NaN are left out for that AU only.
    Zero-division convention (sklearn's ``zero_division=0``): precision is 0 when nothing is predicted
    positive, recall is 0 when nothing is labeled positive, F1 is 0 when both are 0 (no true
    positives). An AU with no labeled frames at all gets NaN everywhere and is left out of the means.

    Args:
      logits_or_probs: (..., A) logits or probabilities (A = 12 for the paper).
      labels: (..., A) in {0, 1}, NaN where missing.
      threshold: probability threshold.
      from_logits: apply a sigmoid first.

    Returns:
      dict with ``f1, precision, recall, accuracy`` ((A,) float64 arrays in [0, 1]), their means over
      AUs ``f1_mean, precision_mean, recall_mean, accuracy_mean``, ``auc`` ((A,) `roc_auc` of the
      scores, NaN where an AU has no labeled positive or no labeled negative) and per-AU counts
      ``support`` (labeled positives) and ``num_labeled`` ((A,) int64).
    """
    scores = np.asarray(logits_or_probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if scores.shape != y.shape or scores.ndim < 1:
        raise UserError(f"AU predictions have shape {scores.shape} but labels have shape {y.shape}")
    num_au = scores.shape[-1]
    scores = scores.reshape(-1, num_au)
    y = y.reshape(-1, num_au)
    if not np.all(np.isfinite(scores)):
        raise UserError("AU predictions contain NaN or infinite values")
    labeled = ~np.isnan(y)
    if not np.all(np.isin(y[labeled], (0.0, 1.0))):
        raise UserError("AU labels must be 0, 1 or NaN (missing)")
    probs = scipy.special.expit(scores) if from_logits else scores
    pred = probs >= threshold
    pos = (y == 1.0) & labeled
    neg = (y == 0.0) & labeled
    tp = np.sum(pred & pos, axis=0).astype(np.float64)
    fp = np.sum(pred & neg, axis=0).astype(np.float64)
    fn = np.sum(~pred & pos, axis=0).astype(np.float64)
    tn = np.sum(~pred & neg, axis=0).astype(np.float64)
    num_labeled = labeled.sum(axis=0)

    def ratio(num, den):
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    precision = ratio(tp, tp + fp)
    recall = ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    accuracy = ratio(tp + tn, num_labeled.astype(np.float64))
    empty = num_labeled == 0
    out: dict = {}
    for key, value in (("f1", f1), ("precision", precision), ("recall", recall), ("accuracy", accuracy)):
        value = np.where(empty, np.nan, value)
        out[key] = value
        out[f"{key}_mean"] = float(np.mean(value[~empty])) if np.any(~empty) else float("nan")
    out["auc"] = np.array([roc_auc(scores[labeled[:, a], a], y[labeled[:, a], a]) for a in range(num_au)])
    out["support"] = pos.sum(axis=0).astype(np.int64)
    out["num_labeled"] = num_labeled.astype(np.int64)
    return out


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative (ties
    count half), from the Mann-Whitney rank sum. Threshold-free, so it tells whether a detector ranks the
    frames right even where its threshold misses them all.

    Args:
      scores: (N,) any monotone score (logits or probabilities). labels: (N,) in {0, 1}.

    Returns:
      AUC in [0, 1]; NaN without a positive or without a negative.
    """
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel() == 1
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = scipy.stats.rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# --------------------------------------------------------------------------------------------------
# Whole test sets
# --------------------------------------------------------------------------------------------------

# (rate kind, key prefix of the wave in the per-video dicts)
_RATE_TASKS = (("hr", "bvp"), ("rr", "resp"))
_AU_SCORES = ("f1", "precision", "recall", "accuracy")


def _jsonify(obj):
    """Numpy scalars/arrays -> floats/ints/lists; NaN and inf -> None (strict JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonify(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return [_jsonify(v) for v in obj.tolist()]
    if isinstance(obj, list | tuple):
        return [_jsonify(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _score_rates(video: Mapping, kind: str, prefix: str, fs: float, window_s, diff_normalized, method):
    """Per-window rates and SNRs of one video for one task.

    Returns:
      None when the video has no ``<prefix>_pred``; else (pred_rates, label_rates, snrs): (W,) float64
      arrays over the `window_slices`, label_rates None without a label (snrs then empty), SNR in dB.
    """
    pred = video.get(f"{prefix}_pred")
    if pred is None:
        return None
    p = as_wave(pred, f"{prefix}_pred")
    label = video.get(f"{prefix}_label")
    y = None if label is None else as_wave(label, f"{prefix}_label")
    if y is not None and y.shape != p.shape:
        raise UserError(f"{prefix}_pred has {p.shape[0]} samples but {prefix}_label has {y.shape[0]}")
    pred_rates, label_rates, snrs = [], [], []
    for s in window_slices(p.shape[0], fs, window_s):
        p_proc = process_wave(p[s], fs, kind, diff_normalized)
        pred_rates.append(rate_of_processed(p_proc, fs, kind, method))
        if y is not None:
            y_rate = wave_to_rate(y[s], fs, kind, diff_normalized, method)
            label_rates.append(y_rate)
            snrs.append(snr_db(p_proc, y_rate, fs, kind, process=False) if math.isfinite(y_rate) else np.nan)
    return np.asarray(pred_rates), (None if y is None else np.asarray(label_rates)), np.asarray(snrs)


def _sampling_rate(video: Mapping, fs_key: str) -> float:
    """The video's sampling rate in Hz (``video[fs_key]``); `UserError` if absent or not positive."""
    if fs_key not in video:
        raise UserError(f"no sampling rate {fs_key!r}")
    fs = float(video[fs_key])
    if not (math.isfinite(fs) and fs > 0):
        raise UserError(f"sampling rate {fs_key}={video[fs_key]!r} is not a positive number")
    return fs


def _score_video(video: Mapping, vid: str, fs_key: str, window_s, method: str, diff_normalized: bool,
                 au_threshold: float) -> tuple[dict, dict[str, tuple], tuple | None]:
    """Scores one video (see `evaluate_videos` for the keys it reads).

    Returns:
      (entry, rates, au): the ``per_video`` dict; per rate kind with a label, (pred_rates, label_rates,
      snrs) (W,) arrays; and ((T, A) AU scores, (T, A) labels) or None without both.
    """
    fs = _sampling_rate(video, fs_key)
    entry: dict = {"video_id": vid, "fps": fs}
    rates: dict[str, tuple] = {}
    lengths = []
    one = window_s is None
    for kind, prefix in _RATE_TASKS:
        scored = _score_rates(video, kind, prefix, fs, window_s, diff_normalized, method)
        if scored is None:
            continue
        pred_rates, label_rates, snrs = scored
        lengths.append(np.shape(np.asarray(video[f"{prefix}_pred"]))[0])
        entry[f"{kind}_pred"] = pred_rates[0] if one else pred_rates
        if label_rates is not None:
            entry[f"{kind}_label"] = label_rates[0] if one else label_rates
            entry[f"{kind}_snr"] = snrs[0] if one else snrs
            rates[kind] = scored
    au = None
    if video.get("au_logits") is not None and video.get("au_label") is not None:
        scores = np.asarray(video["au_logits"], dtype=np.float64)
        labels = np.asarray(video["au_label"], dtype=np.float64)
        entry["au_f1_mean"] = au_metrics(scores, labels, au_threshold)["f1_mean"]
        au = (scores.reshape(-1, scores.shape[-1]), labels.reshape(-1, labels.shape[-1]))
        lengths.append(scores.shape[0])
    if lengths:
        entry["num_frames"] = int(max(lengths))
    return entry, rates, au


def _rate_summary(kind: str, scored: Sequence[tuple]) -> dict[str, float]:
    """``<kind>_<error>`` (`rate_errors`) and ``<kind>_snr``, ``<kind>_snr_se`` (dB) over all windows.

    Args:
      kind: ``"hr"`` or ``"rr"``.
      scored: per video, (pred_rates, label_rates, snrs) (W,) arrays.
    """
    cat = [np.concatenate(v) for v in zip(*scored, strict=True)] if scored else [np.zeros(0)] * 3
    out = {f"{kind}_{key}": value for key, value in rate_errors(cat[0], cat[1]).items()}
    snr = cat[2][np.isfinite(cat[2])]
    out[f"{kind}_snr"] = float(np.mean(snr)) if snr.size else float("nan")
    out[f"{kind}_snr_se"] = float(np.std(snr) / math.sqrt(snr.size)) if snr.size else float("nan")
    return out


def _au_summary(au: Sequence[tuple], au_threshold: float) -> dict:
    """``au_<score>_mean``, ``au_<score>`` and ``au_support`` (dicts by AU name) over all videos' frames.

    Args:
      au: per video, ((T, A) scores, (T, A) labels).
      au_threshold: probability threshold.
    """
    num_au = au[0][0].shape[-1]
    if any(s.shape[-1] != num_au for s, _ in au):
        raise UserError("videos disagree on the number of AUs")
    scores = au_metrics(np.concatenate([s for s, _ in au]), np.concatenate([y for _, y in au]), au_threshold)
    names = AU_NAMES if num_au == len(AU_NAMES) else tuple(f"AU{j}" for j in range(num_au))
    out: dict = {}
    for key in _AU_SCORES:
        out[f"au_{key}_mean"] = scores[f"{key}_mean"]
        out[f"au_{key}"] = dict(zip(names, scores[key].tolist(), strict=True))
    out["au_support"] = dict(zip(names, scores["support"].tolist(), strict=True))
    return out


def evaluate_videos(
    videos: Sequence[Mapping],
    fs_key: str = "fps",
    window_s: float | None = None,
    method: str = "fft",
    diff_normalized: bool = True,
    au_threshold: float = 0.5,
) -> dict:
    """Scores a test set the paper's way: rates per video (or window), AUs over all frames.

    Args:
      videos: one dict per video with ``video_id``, the sampling rate under ``fs_key`` and any of
        ``bvp_pred``/``bvp_label`` ((T,) pulse waves -> HR), ``resp_pred``/``resp_label`` ((T,)
        respiration waves -> RR), ``au_logits``/``au_label`` ((T, 12) logits and {0, 1, NaN} labels).
        A prediction without its label is still given a rate in ``per_video`` but not scored.
      fs_key: key of the sampling rate (Hz) in each dict.
      window_s: None for one rate per video (the paper), else non-overlapping windows of this many
        seconds (see `window_slices`).
      method: ``"fft"``, ``"fine"`` or ``"peak"`` (`signals.RATE_METHODS`).
      diff_normalized: the waves are diff-normalized (integrate before detrending).
      au_threshold: probability threshold for AUs.

    Returns:
      JSON-serialisable dict (floats, ints, lists; NaN written as None): for ``t`` in ``hr, rr``:
      ``t_mae, t_mae_se, t_rmse, t_rmse_se, t_mape, t_mape_se, t_pearson, t_pearson_se,
      t_mean_error, t_n`` (scored windows), ``t_snr, t_snr_se`` (mean SNR in dB and its standard
      error); ``au_f1_mean, au_precision_mean, au_recall_mean, au_accuracy_mean`` and ``au_f1``,
      ``au_precision``, ``au_recall``, ``au_accuracy`` (dicts by AU name); ``num_videos``,
      ``window_s``, ``method``; and ``per_video``: a list of dicts with ``video_id``, ``fps``,
      ``num_frames`` and ``hr_pred, hr_label, hr_snr`` (floats per video, or lists per window), the
      same for ``rr``, and ``au_f1_mean``.
    """
    check_method(method)
    rates: dict[str, list[tuple]] = {kind: [] for kind, _ in _RATE_TASKS}
    au: list[tuple] = []
    per_video = []
    for i, video in enumerate(tqdm(videos, desc="scoring videos", leave=False, disable=None)):
        vid = str(video.get("video_id", f"#{i}"))
        try:
            entry, video_rates, video_au = _score_video(video, vid, fs_key, window_s, method, diff_normalized,
                                                        au_threshold)
        except UserError as e:
            raise UserError(f"video {vid}: {e}") from None
        for kind, scored in video_rates.items():
            rates[kind].append(scored)
        if video_au is not None:
            au.append(video_au)
        per_video.append(entry)

    result: dict = {"num_videos": len(per_video), "window_s": window_s, "method": method}
    for kind, _ in _RATE_TASKS:
        result.update(_rate_summary(kind, rates[kind]))
    if au:
        result.update(_au_summary(au, au_threshold))
    result["per_video"] = per_video
    logger.info(
        "scored %d videos: HR MAE %s, RR MAE %s, AU F1 %s", len(per_video),
        _fmt(result.get("hr_mae")), _fmt(result.get("rr_mae")), _fmt(result.get("au_f1_mean")),
    )
    return _jsonify(result)


def _fmt(x) -> str:
    """A number with 3 decimals for the log, ``n/a`` when missing or not finite."""
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"
