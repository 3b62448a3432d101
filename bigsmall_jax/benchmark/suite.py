"""The whole benchmark: the models timed against the matmul peak, the input pipeline and the profile."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from typing import Any

from bigsmall_jax.benchmark.memory import benchmark_memory
from bigsmall_jax.benchmark.models import DEFAULT_MODELS, ModelBench, benchmark_models
from bigsmall_jax.benchmark.peak import describe_device, device_info, load_average
from bigsmall_jax.benchmark.pipeline import PIPELINE_SYNTHETIC, QUICK_PIPELINE_SYNTHETIC, benchmark_input_pipeline
from bigsmall_jax.benchmark.profile import profile_train_step
from bigsmall_jax.runtime import TUNED_YNN_FUSIONS, _tune_allocator, tuned_compiler_options


def runtime_settings(dtype: str, tuned: bool) -> dict[str, Any]:
    """Tunes the allocator when `tuned` (a CPU) and says so; the XLA compiler options of each compilation.

    Returns:
      {"allocator": what `_tune_allocator` did, or False, "infer_compiler_options",
      "infer_stem_compiler_options", "train_compiler_options": {} untuned}.
    """
    stem = tuned and (dtype, "infer_stem") in TUNED_YNN_FUSIONS
    return {"allocator": _tune_allocator() if tuned else False,
            "infer_compiler_options": tuned_compiler_options(dtype, "infer") if tuned else {},
            "infer_stem_compiler_options": tuned_compiler_options(dtype, "infer_stem") if stem else {},
            "train_compiler_options": tuned_compiler_options(dtype, "train") if tuned else {}}


def _pipeline_result(bench: ModelBench, *, batch_clips: int, quick: bool, data_dir: str | os.PathLike | None,
                     worker_count: int) -> dict[str, Any]:
    """`benchmark_input_pipeline` of `bench`'s train step, in `data_dir` or a temporary folder."""
    settings = QUICK_PIPELINE_SYNTHETIC if quick else PIPELINE_SYNTHETIC
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bigsmall_bench_"))
        return {"model": bench.name,
                **benchmark_input_pipeline(bench.train, data_dir=data_dir, batch_clips=batch_clips,
                                           settings=settings, repeats=2 if quick else 3, worker_count=worker_count)}


def run_benchmark(models: Sequence[str] | None, *, batch_clips: int, dtype: str = "float32", repeats: int = 10,
                  tuned: bool = True, peak_size: int | None = None, input_pipeline: bool = True, quick: bool = False,
                  data_dir: str | os.PathLike | None = None, worker_count: int = 0,
                  profile: bool = False, memory_minutes: Sequence[float] = ()) -> dict[str, Any]:
    """The whole benchmark (``python -m bigsmall_jax.benchmark``); returns the JSON-able result.

    Args:
      models: named variants to time (default `DEFAULT_MODELS`).
      batch_clips: clips per batch.
      tuned: the tuned XLA:CPU presets and allocator (on a CPU only).
      peak_size: side of the peak matmul (default: `matmul_peak_fn`'s).
      input_pipeline: also time the input pipeline (with ``bigsmall`` if timed, else the first model);
        `quick`: on the small dataset, 2 epochs; in `data_dir` (default: a temporary folder).
      profile: also profile the first model's train step.
      memory_minutes: also measure the peak memory of ``infer`` on videos of these lengths
        (`bigsmall_jax.benchmark.memory`; none: skipped).

    Returns:
      {"device", "dtype", "matmul_peak_gflops", "matmul_peak_gflops_best", "batch_clips", "repeats",
      "device_info", "runtime", "models": {name: figures}, ["input_pipeline"], ["profile"], ["memory"],
      "load_avg": {"before", "after"}}.
    """
    info = device_info()
    tuned = tuned and info["platform"] == "cpu"
    runtime = runtime_settings(dtype, tuned)
    load_before = load_average()
    names = list(models or DEFAULT_MODELS)
    timings, benches = benchmark_models(names, batch_clips=batch_clips, dtype=dtype, repeats=repeats,
                                        peak_n=peak_size, tuned=tuned)
    result = {"device": describe_device(info), "dtype": dtype,
              "matmul_peak_gflops": timings["matmul_peak_gflops"],
              "matmul_peak_gflops_best": timings["matmul_peak_gflops_best"],
              "batch_clips": batch_clips, "repeats": repeats, "device_info": info, "runtime": runtime,
              "models": timings["models"]}
    if input_pipeline:
        bench = benches["bigsmall" if "bigsmall" in benches else names[0]]
        result["input_pipeline"] = _pipeline_result(bench, batch_clips=batch_clips, quick=quick, data_dir=data_dir,
                                                    worker_count=worker_count)
    if profile:
        result["profile"] = {"model": names[0], "ops": profile_train_step(benches[names[0]].train)}
    if memory_minutes:
        result["memory"] = benchmark_memory(memory_minutes, batch_clips=batch_clips)
    result["load_avg"] = {"before": load_before, "after": load_average()}
    return result

