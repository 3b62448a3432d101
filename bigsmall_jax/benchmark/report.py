"""The benchmark's result as a text table and as a JSON file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bigsmall_jax.files import write_json_atomic


def _model_lines(result: Mapping[str, Any]) -> list[str]:
    """The machine line, the column header, a rule and one row per model."""
    lines = [f"{result['device']}  dtype={result['dtype']}  batch={result['batch_clips']} clips  "
             f"matmul peak {result['matmul_peak_gflops']:.0f} GFLOP/s  load {result['load_avg']}"]
    header = (f"{'model':<24}{'GFLOP/clip':>11}{'params':>11}{'infer fr/s':>12}{'%peak':>7}{'latency ms':>12}"
              f"{'train clip/s':>14}{'%peak':>7}{'compile s':>11}")
    lines += [header, "-" * len(header)]
    for name, m in result["models"].items():
        lines.append(f"{name:<24}{m['flops_per_clip'] / 1e9:>11.3f}{m['params']:>11,}{m['infer_frames_per_s']:>12.1f}"
                     f"{100 * m['infer_peak_fraction']:>7.1f}{m['infer_latency_ms']:>12.2f}"
                     f"{m['train_clips_per_s']:>14.2f}{100 * m['train_peak_fraction']:>7.1f}{m['compile_s']:>11.1f}")
    return lines


def _profile_lines(profile: Mapping[str, Any]) -> list[str]:
    """A title and one line per profiled op: ms per step, share, name and what it computes."""
    lines = [f"train step of {profile['model']}, costliest ops (jax.profiler; ops run by XLA's own Eigen "
             "convolutions are timed only partly):"]
    for row in profile["ops"]:
        lines.append(f"  {row['ms']:8.1f} ms {100 * row['share']:5.1f}%  {row['op'][:28]:<28} {row['what'][:90]}")
    return lines


def _pipeline_line(pipe: Mapping[str, Any]) -> str:
    """The input pipeline's stage rates, bottleneck, bytes per clip and overheads."""
    stages = ", ".join(f"{k} {v:,.0f}" for k, v in pipe["stage_clips_per_s"].items())
    by_batch = pipe.get("delivered_clips_per_s_by_batch") or {str(pipe["batch_clips"]): pipe["delivered_clips_per_s"]}
    delivered = ", ".join(f"{v:,.0f} clips/s in {k}-clip batches" for k, v in by_batch.items())
    return (f"input pipeline: delivers {delivered} to the devices "
            f"({pipe['bytes_per_clip'] / 1e3:.1f} KB/clip); stages alone, clips/s: {stages}; bottleneck "
            f"{pipe['bottleneck']}\n"
            f"  epoch {pipe['epoch_s']:.2f} s vs step only {pipe['step_only_s']:.2f} s "
            f"(loader overhead {100 * pipe['loader_overhead']:+.1f}%; fetching each step's metrics before "
            f"reading the next batch: {100 * pipe['synchronous_overhead']:+.1f}%)")


def _memory_lines(memory: Mapping[str, Any]) -> list[str]:
    """Peak memory of infer per video length, against the raw frames."""
    lines = [f"infer peak memory ({memory['width']}x{memory['height']} at {memory['fps']:g} fps; the process "
             f"with the model loaded and compiled, no video: {memory['baseline_rss_mib']:.0f} MiB):"]
    for v in memory["videos"]:
        lines.append(f"  {v['minutes']:6g} min {v['frames']:>7} frames: raw frames {v['raw_frames_mib']:>9.0f} MiB, "
                     f"peak RSS {v['peak_rss_mib']:>6.0f} MiB ({v['over_baseline_mib']:+.0f} MiB over the baseline, "
                     f"{100 * v['peak_over_raw']:.1f}% of the raw frames) in {v['infer_s']:.0f} s")
    return lines


def format_table(result: Mapping[str, Any]) -> str:
    """The models' figures as a text table, then the profile, the input pipeline and the memory of infer
    where present.

    `result` is `bigsmall_jax.benchmark.suite.run_benchmark`'s, with "load_avg" one printable value.
    """
    lines = _model_lines(result)
    if result.get("profile"):
        lines += _profile_lines(result["profile"])
    if result.get("input_pipeline"):
        lines.append(_pipeline_line(result["input_pipeline"]))
    if result.get("memory"):
        lines += _memory_lines(result["memory"])
    return "\n".join(lines)


def write_result(path: str | os.PathLike, result: Mapping[str, Any]) -> Path:
    """Writes `result` as JSON (keys in the benchmark's order) to `path` atomically; returns the path."""
    return write_json_atomic(path, result, sort_keys=False)
