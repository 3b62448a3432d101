"""Result plots: Bland-Altman and scatter of rates, waves, AU activations, per-AU F1 and loss curves.

Every function draws on its own figure (`bigsmall_jax.figures.new_figure`) and writes it as a PNG
atomically (`bigsmall_jax.figures.save_png`).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.errors import UserError, file_error
from bigsmall_jax.evaluation import signals
from bigsmall_jax.evaluation.metrics import rate_errors
from bigsmall_jax.figures import new_figure, save_png

log = logging.getLogger(__name__)


def _paired_rates(pred, label) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(label, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise UserError(f"{p.shape[0]} predicted rates but {y.shape[0]} label rates")
    keep = np.isfinite(p) & np.isfinite(y)
    if not np.any(keep):
        raise UserError("no pair of finite predicted and label rates to plot")
    return p[keep], y[keep]


def bland_altman(pred, label, path_png, title: str = "Bland-Altman", units: str = "bpm") -> Path:
    """Bland-Altman plot of predicted vs label rates.

    Args:
      pred, label: (N,) rates (per video or window); pairs with a NaN are left out.
      path_png: output PNG.
      title: figure title.
      units: rate units for the axis labels, e.g. ``"bpm"`` or ``"breaths/min"``.

    Draws (pred + label) / 2 against pred - label with the bias and the 95% limits of agreement
    (bias ± 1.96 std of the differences).
    """
    p, y = _paired_rates(pred, label)
    mean = (p + y) / 2
    diff = p - y
    bias = float(np.mean(diff))
    loa = 1.96 * float(np.std(diff))
    fig = new_figure(5.5, 4.2)
    ax = fig.add_subplot()
    ax.scatter(mean, diff, s=14, alpha=0.7)
    ax.axhline(bias, color="k", label=f"bias {bias:+.2f}")
    ax.axhline(bias + loa, color="k", ls="--", label=f"95% limits \u00b1{loa:.2f}")
    ax.axhline(bias - loa, color="k", ls="--")
    ax.set_xlabel(f"mean of prediction and label ({units})")
    ax.set_ylabel(f"prediction - label ({units})")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return save_png(fig, path_png)


def scatter_rates(pred, label, path_png, title: str = "Rates", units: str = "bpm") -> Path:
    """Scatter of predicted against label rates with the identity line; MAE and Pearson r in the title.

    Args:
      pred, label: (N,) rates; pairs with a NaN are left out.
      path_png: output PNG.
      title: figure title (the errors are appended).
      units: rate units for the axis labels.
    """
    p, y = _paired_rates(pred, label)
    errs = rate_errors(p, y)
    fig = new_figure(4.8, 4.6)
    ax = fig.add_subplot()
    ax.scatter(y, p, s=14, alpha=0.7)
    lo = float(min(p.min(), y.min()))
    hi = float(max(p.max(), y.max()))
    pad = max(1.0, 0.05 * (hi - lo))
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=1, label="prediction = label")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(f"label ({units})")
    ax.set_ylabel(f"prediction ({units})")
    r = errs["pearson"]
    r_text = "n/a" if not math.isfinite(r) else f"{r:.3f}"
    ax.set_title(f"{title}\nMAE {errs['mae']:.2f} {units}, r {r_text}, n {errs['n']}", fontsize="medium")
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    return save_png(fig, path_png)


def _unit_scale(x: np.ndarray) -> np.ndarray:
    std = float(np.std(x))
    return (x - np.mean(x)) / std if std > 0 else x - np.mean(x)


def plot_waves(
    pred_wave,
    label_wave,
    fs: float,
    path_png,
    title: str = "",
    kind: str = "hr",
    diff_normalized: bool = True,
    method: str = "fft",
) -> Path:
    """Predicted against label wave, as the protocol sees them, with both rates in the legend.

    Top: the conditioned waves (`signals.process_wave`: cumsum, detrend, band-pass), each scaled to
    zero mean and unit std, against time in seconds. Bottom: their periodograms inside the band.

    Args:
      pred_wave, label_wave: (T,) waves sampled at ``fs`` Hz (``label_wave`` may be None).
      fs: sampling rate in Hz.
      path_png: output PNG.
      title: figure title.
      kind: ``"hr"`` (pulse) or ``"rr"`` (respiration).
      diff_normalized, method: as in `signals.wave_to_rate`.
    """
    unit = "bpm" if kind == "hr" else "breaths/min"
    low, high = signals.band_for(kind)
    waves = [("prediction", pred_wave)] + ([("label", label_wave)] if label_wave is not None else [])
    fig = new_figure(9.0, 5.0)
    ax_t, ax_f = fig.subplots(2, 1, height_ratios=(3, 2))
    for name, wave in waves:
        x = signals.process_wave(wave, fs, kind, diff_normalized)
        rate = signals.rate_of_processed(x, fs, kind, method)
        t = np.arange(x.shape[0]) / fs
        ax_t.plot(t, _unit_scale(x), lw=1, label=f"{name}: {rate:.1f} {unit}")
        freqs, pxx = signals.periodogram(x, fs)
        band = (freqs >= low) & (freqs <= high)
        ax_f.plot(freqs[band] * 60, pxx[band] / max(float(pxx[band].max()), 1e-30), lw=1, label=name)
    ax_t.set_xlabel("time (s)")
    ax_t.set_ylabel("band-passed wave (std units)")
    ax_t.legend(loc="upper right", fontsize="small")
    ax_t.set_title(title or ("pulse" if kind == "hr" else "respiration"))
    ax_f.set_xlabel(f"rate ({unit})")
    ax_f.set_ylabel("power (normalised)")
    ax_f.legend(loc="upper right", fontsize="small")
    for ax in (ax_t, ax_f):
        ax.grid(alpha=0.3)
    return save_png(fig, path_png)


def plot_au_activations(
    logits_or_probs,
    labels,
    path_png,
    fs: float | None = None,
    title: str = "AU activations",
    au_names: Sequence[str] = AU_NAMES,
    from_logits: bool = True,
    threshold: float = 0.5,
) -> Path:
    """One strip per AU: predicted probability over time against the label (shaded where active).

    Args:
      logits_or_probs: (T, A) logits (or probabilities with ``from_logits=False``).
      labels: (T, A) in {0, 1, NaN} (NaN: missing, drawn hatched), or None.
      path_png: output PNG.
      fs: frame rate in Hz for a time axis in seconds; None for frame numbers.
      title: figure title.
      au_names: A names for the strips.
      from_logits: apply a sigmoid first.
      threshold: drawn as a dotted line.
    """
    scores = np.asarray(logits_or_probs, dtype=np.float64)
    if scores.ndim != 2:
        raise UserError(f"AU predictions must be (T, A), got shape {scores.shape}")
    num_frames, num_au = scores.shape
    if labels is not None:
        labels = np.asarray(labels, dtype=np.float64)
        if labels.shape != scores.shape:
            raise UserError(f"AU predictions have shape {scores.shape} but labels have shape {labels.shape}")
    if len(au_names) != num_au:
        au_names = [f"AU{j}" for j in range(num_au)]
    probs = 1.0 / (1.0 + np.exp(-scores)) if from_logits else scores
    t = np.arange(num_frames) / fs if fs else np.arange(num_frames)
    fig = new_figure(9.0, 0.75 * num_au + 1.0)
    axes = np.atleast_1d(fig.subplots(num_au, 1, sharex=True))
    for j, ax in enumerate(axes):
        if labels is not None:
            ax.fill_between(t, 0, 1, where=labels[:, j] == 1, step="mid", color="tab:green", alpha=0.3,
                            lw=0, label="label active")
            ax.fill_between(t, 0, 1, where=np.isnan(labels[:, j]), step="mid", facecolor="none",
                            edgecolor="0.6", hatch="///", lw=0, label="label missing")
        ax.plot(t, probs[:, j], color="tab:blue", lw=1, label="predicted probability")
        ax.axhline(threshold, color="k", ls=":", lw=0.8)
        ax.set_ylim(-0.05, 1.05)
        ax.set_yticks([])
        ax.set_ylabel(au_names[j], rotation=0, ha="right", va="center")
    axes[0].set_title(title)
    axes[0].legend(loc="upper right", fontsize="x-small", ncols=3)
    axes[-1].set_xlabel("time (s)" if fs else "frame")
    return save_png(fig, path_png)


def _read_loss_csv(path: Path) -> list[dict]:
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise file_error(path, f"cannot read loss log ({e.strerror or e})") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise file_error(path, f"not a CSV loss log ({e})") from None
    if not rows:
        raise file_error(path, "loss log has no rows")
    return rows


def _to_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


_SPLIT_PREFIXES = ("train_", "val_", "valid_", "eval_", "test_")


def _loss_columns(records: Sequence[Mapping]) -> tuple[str | None, np.ndarray, dict[str, np.ndarray]]:
    """The x axis and the numeric columns of logged rows.

    Returns:
      (x_key: the first of ``step``, ``epoch`` present, else None; (N,) x values, the row numbers without
      an x key; {column: (N,) float64 values, NaN where missing}, columns with no number left out).
    """
    keys: list[str] = []
    for r in records:
        keys.extend(k for k in r if k not in keys)
    x_key = next((k for k in ("step", "epoch") if k in keys), None)
    x_all = (np.array([_to_float(r.get(x_key)) for r in records]) if x_key
             else np.arange(len(records), dtype=np.float64))
    columns = {}
    for k in keys:
        if k == x_key:
            continue
        v = np.array([_to_float(r.get(k)) for r in records])
        if np.any(np.isfinite(v)):
            columns[k] = v
    return x_key, x_all, columns


def _loss_panels(columns: Iterable[str]) -> dict[str, list[str]]:
    """Columns grouped by their name without a split prefix (``train_loss``, ``val_loss`` -> ``loss``)."""
    panels: dict[str, list[str]] = {}
    for k in columns:
        base = next((k[len(p):] for p in _SPLIT_PREFIXES if k.startswith(p)), k)
        panels.setdefault(base, []).append(k)
    return panels


def plot_loss_curves(
    csv_or_records: str | os.PathLike | Iterable[Mapping], path_png, title: str = "Training"
) -> Path:
    """Loss (and metric) curves from a training log.

    Args:
      csv_or_records: a CSV file with a header row, or an iterable of dicts (one per logged step).
        The x axis is the first of ``step``, ``epoch`` present (else the row number); every other
        numeric column is a curve. Columns sharing a name after a ``train_``/``val_``/``eval_``/
        ``test_`` prefix share a panel (e.g. ``train_loss`` and ``val_loss``). Missing or empty
        cells are skipped, so validation rows logged once an epoch plot as their own points.
      path_png: output PNG.
      title: figure title.
    """
    if isinstance(csv_or_records, str | os.PathLike):
        where: str | Path = Path(csv_or_records)
        records = _read_loss_csv(where)
    else:
        where, records = "loss records", [dict(r) for r in csv_or_records]
    if not records:
        raise UserError(f"{where}: no rows to plot")
    x_key, x_all, columns = _loss_columns(records)
    if not columns:
        raise UserError(f"{where}: no numeric column to plot")
    panels = _loss_panels(columns)
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = new_figure(4.2 * ncols, 3.2 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (base, names) in zip(axes, panels.items(), strict=False):
        for k in names:
            v = columns[k]
            ok = np.isfinite(v) & np.isfinite(x_all)
            marker = "o" if ok.sum() <= 20 else None
            ax.plot(x_all[ok], v[ok], lw=1, marker=marker, ms=3, label=k)
        positive = all(np.all(columns[k][np.isfinite(columns[k])] > 0) for k in names)
        if positive and "loss" in base:
            ax.set_yscale("log")
        ax.set_title(base)
        ax.set_xlabel(x_key or "row")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return save_png(fig, path_png)


def plot_au_f1(results: Mapping, path_png) -> Path:
    """Bar chart of per-AU F1 (with precision and recall as markers) and the mean F1 as a line.

    Args:
      results: the metrics of `metrics.evaluate_videos` with ``au_f1``, ``au_precision``, ``au_recall``
        (dicts by AU name, None where undefined) and ``au_f1_mean``.
      path_png: output PNG.
    """
    names = list(results["au_f1"])
    f1 = np.array([np.nan if results["au_f1"][a] is None else results["au_f1"][a] for a in names], float)
    fig = new_figure(max(5.0, 0.55 * len(names) + 1.5), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    ax.bar(x, np.nan_to_num(f1), color="tab:blue", alpha=0.8, label="F1")
    for key, marker in (("au_precision", "v"), ("au_recall", "^")):
        v = [np.nan if results[key][a] is None else results[key][a] for a in names]
        ax.plot(x, v, ls="none", marker=marker, color="k", ms=5, label=key.removeprefix("au_"))
    mean = results.get("au_f1_mean")
    if mean is not None:
        ax.axhline(mean, color="tab:red", ls="--", lw=1, label=f"mean F1 {mean:.3f}")
    ax.set_xticks(x, names, rotation=45)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title("AU detection per action unit")
    ax.legend(fontsize="small", ncols=2, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    return save_png(fig, path_png)


def _rate_pairs(per_video: Sequence[Mapping], kind: str) -> tuple[np.ndarray, np.ndarray]:
    pred, label = [], []
    for v in per_video:
        p, y = v.get(f"{kind}_pred"), v.get(f"{kind}_label")
        if p is None or y is None:
            continue
        pred.extend(np.atleast_1d(np.asarray(p, dtype=float)))
        label.extend(np.atleast_1d(np.asarray(y, dtype=float)))
    return np.asarray(pred, float), np.asarray(label, float)


def save_plots(results: Mapping, predictions: Sequence[Mapping], out_dir: Path, stem: str) -> list[Path]:
    """Writes the evaluation plots into `out_dir` as ``<stem>_<plot>.png``; returns the paths written.

    Bland-Altman of HR and RR (when some video has both rates), per-AU F1 (when AUs are scored), and the
    waves and AU activations of the first video (when it has the predictions).
    """
    written = []
    for kind, unit, title in (("hr", "bpm", "Heart rate"), ("rr", "breaths/min", "Respiration rate")):
        p, y = _rate_pairs(results.get("per_video", []), kind)
        ok = np.isfinite(p) & np.isfinite(y)
        if np.any(ok):
            written.append(bland_altman(p[ok], y[ok], out_dir / f"{stem}_{kind}_bland_altman.png",
                                        title=f"{title}: Bland-Altman (n = {int(ok.sum())})", units=unit))
    if results.get("au_f1"):
        written.append(plot_au_f1(results, out_dir / f"{stem}_au_f1.png"))
    if predictions:
        first = predictions[0]
        vid, fps = first["video_id"], first["fps"]
        for kind, prefix in (("hr", "bvp"), ("rr", "resp")):
            if f"{prefix}_pred" in first:
                try:
                    written.append(plot_waves(first[f"{prefix}_pred"], first.get(f"{prefix}_label"), fps,
                                                    out_dir / f"{stem}_waves_{kind}.png", kind=kind,
                                                    title=f"{vid}: {'pulse' if kind == 'hr' else 'respiration'}"))
                except UserError as e:  # e.g. a video too short for the band-pass
                    log.warning("no %s wave plot for video %s: %s", kind, vid, e)
        if "au_logits" in first:
            written.append(plot_au_activations(first["au_logits"], first.get("au_label"),
                                                     out_dir / f"{stem}_au_activations.png", fs=fps,
                                                     title=f"{vid}: AU activations"))
    return written
