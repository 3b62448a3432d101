"""What `infer` adds to the model's waves, as a physiological monitor would: heart-rate variability from the
pulse's beats, a quality index and low-quality flag per rate, and (with windows) rates over time.

`physiology` computes them from an `Inference` (and its `windows.WindowEstimate` list); `document` turns
them into JSON fields; `draw_beats` and `draw_rates_over_time` are the plot's additions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from bigsmall_jax.errors import UserError
from bigsmall_jax.evaluation import hrv, quality
from bigsmall_jax.inference.windows import WindowEstimate


@dataclasses.dataclass
class Physiology:
    """Whole-video quality and HRV, and the windows (if asked for).

    Attributes:
      hr, rr: whole-video rate estimates with quality (None without that head).
      hrv: beats and HRV of the pulse (None without a pulse head or when the video is too short).
      windows: per-window estimates, or None when no windows were asked for.
      window_s, stride_s: the windows' length and stride in seconds.
    """

    hr: quality.RateEstimate | None
    rr: quality.RateEstimate | None
    hrv: hrv.HRV | None
    windows: list[WindowEstimate] | None = None
    window_s: float | None = None
    stride_s: float | None = None


def physiology(outputs: dict[str, np.ndarray], fps: float, windows: list[WindowEstimate] | None = None,
               window_s: float | None = None, stride_s: float | None = None) -> Physiology:
    """Quality, HRV and windows of a video's model outputs ({"bvp", "resp"}: (T,) diff-normalized waves)."""
    beats = None
    if "bvp" in outputs:
        try:
            beats = hrv.hrv(outputs["bvp"], fps)
        except UserError:  # too short for the band-pass; the rate is then null as well
            beats = None
    return Physiology(
        hr=quality.rate_estimate(outputs["bvp"], fps, "hr") if "bvp" in outputs else None,
        rr=quality.rate_estimate(outputs["resp"], fps, "rr") if "resp" in outputs else None,
        hrv=beats, windows=windows, window_s=window_s, stride_s=stride_s)


def document(p: Physiology) -> dict[str, Any]:
    """The JSON fields: ``hr_snr_db``, ``hr_low_quality``, ``rr_*`` likewise, ``hrv`` and ``windows``."""
    doc: dict[str, Any] = {}
    if p.hr is not None:
        doc.update({k: v for k, v in p.hr.to_dict("hr_bpm").items() if k != "hr_bpm"})
    if p.rr is not None:
        doc.update({k: v for k, v in p.rr.to_dict("rr_bpm").items() if k != "rr_bpm"})
    doc["quality"] = {"index": "SNR in dB of the wave around its spectral peak and its second harmonic "
                               "(+-6 beats/min, +-2 breaths/min) over the rest of the band",
                      "low_quality_below_db": dict(quality.LOW_QUALITY_DB)}
    if p.hr is not None:
        doc["hrv"] = p.hrv.to_dict() if p.hrv is not None else None
    if p.windows is not None:
        doc["windows"] = {"window_s": p.window_s, "stride_s": p.stride_s,
                          "estimates": [w.to_dict() for w in p.windows]}
    return doc


def quality_note(p: Physiology, kind: str) -> str:
    """``", SNR 4.1 dB"`` (with ``", LOW QUALITY"`` when flagged) for a title; empty without the estimate."""
    est = p.hr if kind == "hr" else p.rr
    if est is None or est.snr_db is None:
        return ""
    return f", SNR {est.snr_db:.1f} dB" + (", LOW QUALITY" if est.low_quality else "")


def draw_beats(ax: Axes, p: Physiology, wave_shown: np.ndarray, fps: float) -> None:
    """Marks the detected beats on the band-passed pulse (`wave_shown`, (T,)) and puts the HRV in a note."""
    if p.hrv is None or not len(p.hrv.beat_times_s):
        return
    t = np.arange(len(wave_shown)) / fps
    ax.plot(p.hrv.beat_times_s, np.interp(p.hrv.beat_times_s, t, wave_shown), "v", color="k", ms=3,
            label="beats")
    h = p.hrv
    if h.sdnn_ms is not None:
        ax.text(0.01, 0.03, f"mean IBI {h.mean_ibi_ms:.0f} ms, SDNN {h.sdnn_ms:.0f} ms, RMSSD {h.rmssd_ms:.0f} ms, "
                            f"pNN50 {h.pnn50_percent:.0f}%", transform=ax.transAxes, fontsize="x-small")


def draw_rates_over_time(ax: Axes, p: Physiology) -> None:
    """Heart and breathing rate per window (at the window's end), low-quality windows hollow."""
    centres = np.array([w.end_s for w in p.windows])
    for kind, colour, label in (("hr", "tab:red", "heart rate (bpm)"), ("rr", "tab:blue", "breathing (/min)")):
        ests = [getattr(w, kind) for w in p.windows]
        if not ests or ests[0] is None:
            continue
        rate = np.array([np.nan if e.rate is None else e.rate for e in ests])
        low = np.array([e.low_quality for e in ests])
        ax.plot(centres, rate, "-", color=colour, lw=1, label=label)
        ax.plot(centres[~low], rate[~low], "o", color=colour, ms=3)
        ax.plot(centres[low], rate[low], "o", mfc="none", color=colour, ms=3)
    ax.set_title(f"rates over time ({p.window_s:g} s windows every {p.stride_s:g} s; hollow: low quality)")
    ax.set_ylabel("per minute")
    ax.legend(loc="upper right", fontsize="x-small")
    ax.grid(alpha=0.3)


__all__ = ["Physiology", "document", "draw_beats", "draw_rates_over_time", "physiology", "quality_note"]
