"""Speed of the model family on this machine: FLOPs, parameters, latency, throughput and the input pipeline.

    python -m bigsmall_jax.benchmark [--models bigsmall big_au ...] [--batch 16] [--dtype float32|bfloat16]
        [--repeats 10] [--quick] [--no-input-pipeline] [--data-dir DIR] [--no-tune] [--profile]
        [--output OUT.json]

For every model (default: all of `bigsmall_jax.model.bigsmall.NAMED_VARIANTS`, plus ``single_task_sum``, the three
single-task baselines run one after the other on the same frames) it reports:

* ``flops_per_clip`` / ``flops_per_frame`` of one eval-mode forward pass (XLA cost analysis, a multiply-add
  counts 2; `bigsmall_jax.flops`) and ``params``;
* ``infer_frames_per_s``: the jitted forward pass on ``--batch`` clips, after warm-up, median of
  ``--repeats``; ``infer_latency_ms``: the same for a single clip;
* ``train_clips_per_s``: the full train step of the trainer (`bigsmall_jax.train.make_train_step` under
  ``jax.pmap`` with the state donated, as ``python -m bigsmall_jax.train`` runs it: forward with per-clip
  dropout, backward, AdamW update) on ``--batch`` clips already on the device;
* ``compile_s``: XLA compile time of the batched forward pass plus the train step;
* ``infer_peak_fraction`` / ``train_peak_fraction``: achieved GFLOP/s (FLOPs x rate; for training the XLA
  cost of the whole step, ``train_flops_per_clip``) over ``matmul_peak_gflops``, what a large jitted
  matmul in the same dtype reaches in the same run. The fractions compare across machines.

All timings are interleaved: every round runs the peak matmul and then each model's functions once, and
each figure is the median over rounds, so that a burst of load from other processes hits every figure
alike. ``load_avg`` records the machine's load before and after.

The input pipeline (``input_pipeline``): a small synthetic dataset is built with
`bigsmall_jax.prepare.ensure_dataset` (in a temporary folder unless ``--data-dir`` is given), then
``records_per_s`` (clips read from the ArrayRecord source and decoded, in shuffled order),
``batches_per_s`` (model-ready batches out of `bigsmall_jax.datasets.input_pipeline.make_loader`), ``epoch_s`` (one
epoch of training as the trainer runs it: loader, `bigsmall_jax.train.shard_batch`, the step, its metrics
fetched after the next step is dispatched), ``step_only_s`` (the same number of steps on a batch already on
the device), ``loader_overhead`` = epoch_s / step_only_s - 1, and ``synchronous_overhead`` for a loop that
fetches each step's metrics before reading the next batch.

``--profile`` adds the first model's train step broken down by XLA op (`profile_train_step`).

On a CPU the benchmark compiles the forward passes (`bigsmall_jax.runtime.Forward`, as evaluation and
inference run them) and the train steps with the tuned XLA:CPU presets (`bigsmall_jax.runtime`: which ops go
to the YNNPACK library, for inference and for training) and keeps freed memory in the process;
docs/benchmark.md has what each is worth. ``--no-tune`` runs with XLA's and the allocator's defaults
instead. A GPU or TPU is used when JAX finds one (``jax.devices()[0]``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from bigsmall_jax.checkpoints.model_dir import write_json_atomic
from bigsmall_jax.datasets.recording import BP4D_AU_POS_WEIGHT
from bigsmall_jax.errors import UserError, cli_main, file_error
from bigsmall_jax.model.bigsmall import (
    DTYPES,
    NAMED_VARIANTS,
    BigSmall,
    build_model,
    count_params,
    init_variables,
    named_config,
)
from bigsmall_jax.model.flops import forward_cost, lowered_flops
from bigsmall_jax.runtime import (
    TUNED_YNN_FUSIONS,
    Forward,
    _tune_allocator,
    tuned_compiler_options,
)

log = logging.getLogger(__name__)

DEFAULT_MODELS: tuple[str, ...] = tuple(NAMED_VARIANTS)
SINGLE_TASK_MODELS: tuple[str, ...] = ("big_au", "small_bvp", "small_resp")
BENCH_DTYPES: tuple[str, ...] = ("float32", "bfloat16")

# The synthetic dataset of the input-pipeline benchmark: 6 subjects x 2 videos of 8 s at 25 fps.
PIPELINE_SYNTHETIC: dict[str, Any] = dict(n_subjects=6, videos_per_subject=2, duration_s=8.0, fps=25.0,
                                          frame_size=64, seed=0)
QUICK_PIPELINE_SYNTHETIC: dict[str, Any] = dict(n_subjects=4, videos_per_subject=1, duration_s=2.0, fps=25.0,
                                                frame_size=48, seed=0)

# ----------------------------------------------------------------------------------------------------------
# The machine.


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info() -> dict[str, Any]:
    """What the numbers were measured on: the JAX device, the host CPU, versions and XLA flags."""
    dev = jax.devices()[0]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "num_devices": jax.local_device_count(),
        "cpu_model": _cpu_model(),
        "cpu_cores": cores,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def describe_device(info: Mapping[str, Any]) -> str:
    """One line, e.g. ``cpu: Intel(R) Xeon(R) Processor, 2 cores`` or ``gpu: NVIDIA H100 80GB HBM3 x 1``."""
    if info["platform"] == "cpu":
        return f"cpu: {info['cpu_model']}, {info['cpu_cores']} cores"
    return f"{info['platform']}: {info['device_kind']} x {info['num_devices']}"


# ----------------------------------------------------------------------------------------------------------
# Timing.


def matmul_peak_fn(dtype: str = "float32", n: int | None = None) -> tuple[Callable[[], Any], float]:
    """(run once and block, FLOPs) of an n x n by n x n jitted matmul in `dtype` on the default device.

    n defaults to 2048 on a CPU (about 50 ms on two cores) and 8192 on accelerators.
    """
    if n is None:
        n = 2048 if jax.devices()[0].platform == "cpu" else 8192
    keys = jax.random.split(jax.random.key(0))
    a, b = (jax.random.normal(k, (n, n), DTYPES[dtype]) for k in keys)
    matmul = jax.jit(jnp.matmul).lower(a, b).compile()
    return (lambda: matmul(a, b).block_until_ready()), 2.0 * n**3


def time_interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                     progress: bool = True) -> dict[str, np.ndarray]:
    """Seconds per call of each function, over `repeats` rounds that each call every function once.

    Args:
      fns: name -> function that runs once and blocks until its results are ready.
      repeats: rounds timed (after `warmup` untimed rounds).
    Returns:
      name -> (repeats,) seconds.
    """
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in tqdm(range(repeats), desc="timing", unit="round", disable=not progress, leave=False):
        for name, f in fns.items():
            start = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - start)
    return {k: np.asarray(v) for k, v in times.items()}


# ----------------------------------------------------------------------------------------------------------
# One model.


def synthetic_batch(config, n_clips: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A training batch of random frames and labels laid out like `bigsmall_jax.datasets.input_pipeline`'s.

    Returns:
      {"big": (N*T, B, B, 3), "small": (N*T, S, S, 3) float32 ~ N(0, 1), "au" (N*T, 12) in {0, 1},
      "bvp", "resp" (N*T,) ~ N(0, 1), and all-ones masks "au_mask", "bvp_mask", "resp_mask", "frame_mask"}.
    """
    rng = np.random.default_rng(seed)
    n = n_clips * config.n_segment
    return {
        "big": rng.standard_normal((n, config.big_size, config.big_size, 3), np.float32),
        "small": rng.standard_normal((n, config.small_size, config.small_size, 3), np.float32),
        "au": (rng.random((n, 12)) < 0.3).astype(np.float32),
        "au_mask": np.ones((n, 12), np.float32),
        "bvp": rng.standard_normal(n).astype(np.float32),
        "bvp_mask": np.ones(n, np.float32),
        "resp": rng.standard_normal(n).astype(np.float32),
        "resp_mask": np.ones(n, np.float32),
        "frame_mask": np.ones(n, np.float32),
    }


@dataclasses.dataclass
class TrainStepBench:
    """The trainer's compiled train step with its (donated) state and a device-resident batch."""

    model: BigSmall
    step: Callable  # the jax.pmap'ed step, as the trainer builds it
    compiled: Any  # its AOT-compiled form for `batch`'s shapes
    state: Any
    batch: Any
    n_devices: int
    flops: float  # XLA cost of one step on one device
    compile_s: float

    def dispatch(self, batch=None):
        """Starts one step on `batch` (host arrays shaped by `bigsmall_jax.train.shard_batch`, copied to the
        devices first, as pmap would; keys the step does not read, e.g. "record_index", are left out; default:
        the resident batch); returns its metrics without waiting."""
        if batch is None:
            batch = self.batch
        else:
            from bigsmall_jax.train.parallel import put_sharded

            batch = put_sharded({k: batch[k] for k in self.batch}, jax.local_devices()[: self.n_devices])
        self.state, metrics = self.compiled(self.state, batch)
        return metrics

    def run(self, batch=None) -> dict[str, Any]:
        """One step (see `dispatch`); blocks; returns the metrics as floats."""
        return {k: float(v[0]) for k, v in jax.device_get(self.dispatch(batch)).items()}


def make_train_step_bench(model: BigSmall, batch_clips: int, seed: int = 0, lr: float = 1e-3,
                          compiler_options: Mapping[str, Any] | None = None) -> TrainStepBench:
    """The train step of `bigsmall_jax.train` (AdamW, the paper's loss and AU pos_weight, per-clip dropout,
    ``jax.pmap`` over the local devices with the state donated), compiled for `batch_clips` clips.

    `compiler_options` (XLA debug options, e.g. ``{"xla_cpu_experimental_ynn_fusion_type": ""}``) apply to
    this compilation only: experiments compare settings within one process.
    """
    import optax

    from bigsmall_jax.train import optim as optim_lib
    from bigsmall_jax.train.parallel import AXIS, check_batch_divisible, put_sharded, replicate, shard_batch
    from bigsmall_jax.train.state import create_train_state
    from bigsmall_jax.train.step import make_train_step

    config = model.config
    devices = jax.local_devices()
    check_batch_divisible(batch_clips, len(devices))
    schedule = optax.constant_schedule(lr)
    tx = optim_lib.make_optimizer(schedule)
    pos_weight = BP4D_AU_POS_WEIGHT if config.n_au == len(BP4D_AU_POS_WEIGHT) else None
    step_fn = make_train_step(model, schedule, seed=seed, task_weights={"au": 1.0, "bvp": 1.0, "resp": 1.0},
                                        au_pos_weight=pos_weight)
    p_step = jax.pmap(step_fn, axis_name=AXIS, donate_argnums=(0,))
    state = replicate(create_train_state(model, tx, seed), devices)
    host = shard_batch(synthetic_batch(config, batch_clips, seed), len(devices), config.n_segment)
    batch = put_sharded(host, devices)
    start = time.perf_counter()
    lowered = p_step.lower(state, batch)
    compiled = lowered.compile(compiler_options=dict(compiler_options or {}))
    compile_s = time.perf_counter() - start
    return TrainStepBench(model, p_step, compiled, state, batch, len(devices), lowered_flops(lowered), compile_s)


@dataclasses.dataclass
class ModelBench:
    """A model ready to be timed: compiled forward passes and train step, and its static costs."""

    name: str
    model: BigSmall
    batch_clips: int
    flops_per_clip: float
    params: int
    compile_infer_s: float
    infer_batch: Callable[[], Any]
    infer_clip: Callable[[], Any]
    train: TrainStepBench

    @property
    def n_segment(self) -> int:
        return self.model.config.n_segment

    @property
    def train_flops_per_clip(self) -> float:
        return self.train.flops * self.train.n_devices / self.batch_clips

    def timed_functions(self) -> dict[str, Callable[[], Any]]:
        return {f"{self.name}/infer": self.infer_batch, f"{self.name}/latency": self.infer_clip,
                f"{self.name}/train": self.train.run}


def prepare_model(name: str, *, batch_clips: int, dtype: str = "float32", seed: int = 0, tuned: bool = False,
                  label: str | None = None, model: BigSmall | None = None) -> ModelBench:
    """Builds, initializes and compiles (forward on `batch_clips` clips and on one clip, train step) a
    named variant (`bigsmall_jax.model.bigsmall.NAMED_VARIANTS`) computing in `dtype`.

    The forward passes are `bigsmall_jax.runtime.Forward`, as evaluation and inference run them; `tuned`:
    with the `TUNED_YNN_FUSIONS` presets on a CPU (the forward pass's and the train step's), else XLA's
    defaults. `label` names the timings (default: `name`); `model` replaces the named variant's module
    (experiments with a modified model).
    """
    if dtype not in BENCH_DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; valid: {', '.join(BENCH_DTYPES)}")
    tuned = tuned and jax.devices()[0].platform == "cpu"
    model = model or build_model(named_config(name, dtype=dtype))
    config = model.config
    variables = init_variables(model, jax.random.key(seed))
    data = synthetic_batch(config, batch_clips, seed)
    big, small = jax.device_put(data["big"]), jax.device_put(data["small"])
    t = config.n_segment
    forward = Forward(model, tuned=tuned)
    start = time.perf_counter()
    fwd_batch = forward.compile(variables, big, small)
    compile_infer_s = time.perf_counter() - start
    big1, small1 = big[:t], small[:t]
    fwd_clip = forward.compile(variables, big1, small1)
    train_options = tuned_compiler_options(dtype, "train") if tuned else None
    return ModelBench(
        name=label or name, model=model, batch_clips=batch_clips,
        flops_per_clip=forward_cost(model, variables)["flops_per_clip"],
        params=count_params(variables["params"]),
        compile_infer_s=compile_infer_s,
        infer_batch=lambda: jax.block_until_ready(fwd_batch(variables, big, small)),
        infer_clip=lambda: jax.block_until_ready(fwd_clip(variables, big1, small1)),
        train=make_train_step_bench(model, batch_clips, seed, compiler_options=train_options),
    )


def model_figures(bench: ModelBench, times: Mapping[str, np.ndarray], peak_gflops: float) -> dict[str, Any]:
    """The JSON entry of one model from its interleaved timings (seconds per call)."""
    infer_s = float(np.median(times[f"{bench.name}/infer"]))
    latency_s = float(np.median(times[f"{bench.name}/latency"]))
    train_s = float(np.median(times[f"{bench.name}/train"]))
    t = bench.n_segment
    out = {
        "flops_per_clip": bench.flops_per_clip,
        "flops_per_frame": bench.flops_per_clip / t,
        "train_flops_per_clip": bench.train_flops_per_clip,
        "params": bench.params,
        "n_segment": t,
        "batch_clips": bench.batch_clips,
        "infer_frames_per_s": bench.batch_clips * t / infer_s,
        "infer_latency_ms": latency_s * 1e3,
        "train_clips_per_s": bench.batch_clips / train_s,
        "train_step_ms": train_s * 1e3,
        "compile_s": bench.compile_infer_s + bench.train.compile_s,
        "compile_infer_s": bench.compile_infer_s,
        "compile_train_s": bench.train.compile_s,
    }
    return {**out, **peak_fractions(out, peak_gflops)}


def peak_fractions(fig: Mapping[str, Any], peak_gflops: float) -> dict[str, float]:
    """Achieved GFLOP/s of inference (batched and one clip) and training, and each over the peak."""
    infer = fig["flops_per_frame"] * fig["infer_frames_per_s"] / 1e9
    latency = fig["flops_per_clip"] / (fig["infer_latency_ms"] / 1e3) / 1e9
    train = fig["train_flops_per_clip"] * fig["train_clips_per_s"] / 1e9
    return {"infer_gflops": infer, "infer_peak_fraction": infer / peak_gflops,
            "latency_gflops": latency, "latency_peak_fraction": latency / peak_gflops,
            "train_gflops": train, "train_peak_fraction": train / peak_gflops}


def single_task_sum(models: Mapping[str, Mapping[str, Any]], peak_gflops: float) -> dict[str, Any]:
    """The three single-task baselines run one after the other on the same frames: costs add, rates
    combine harmonically (time per frame adds)."""
    parts = [models[name] for name in SINGLE_TASK_MODELS]
    t = parts[0]["n_segment"]
    out = {k: sum(p[k] for p in parts) for k in ("flops_per_clip", "flops_per_frame", "train_flops_per_clip",
                                                  "params", "infer_latency_ms", "train_step_ms", "compile_s",
                                                  "compile_infer_s", "compile_train_s")}
    out["n_segment"] = t
    out["batch_clips"] = parts[0]["batch_clips"]
    out["infer_frames_per_s"] = 1.0 / sum(1.0 / p["infer_frames_per_s"] for p in parts)
    out["train_clips_per_s"] = 1.0 / sum(1.0 / p["train_clips_per_s"] for p in parts)
    return {**out, **peak_fractions(out, peak_gflops)}


def benchmark_models(names: Sequence[str], *, batch_clips: int, dtype: str = "float32", repeats: int = 10,
                     peak_n: int | None = None, tuned: bool = True, progress: bool = True
                     ) -> tuple[dict[str, Any], dict[str, ModelBench]]:
    """Compiles and times every model, interleaved with the peak matmul.

    `tuned`: compile the forward passes and train steps with the `TUNED_YNN_FUSIONS` presets (on a CPU;
    elsewhere XLA's defaults); the peak matmul always with XLA's defaults.

    Returns:
      ({"matmul_peak_gflops", "matmul_peak_gflops_best", "models": {name: figures}}, {name: ModelBench}).
    """
    unknown = [n for n in names if n not in NAMED_VARIANTS]
    if unknown:
        raise UserError(f"unknown model(s) {unknown}; valid: {', '.join(NAMED_VARIANTS)}")
    if batch_clips < 1 or repeats < 1:
        raise UserError(f"--batch and --repeats must be >= 1, got {batch_clips} and {repeats}")
    benches = {}
    for name in tqdm(names, desc="compile", unit="model", disable=not progress):
        benches[name] = prepare_model(name, batch_clips=batch_clips, dtype=dtype, tuned=tuned)
        log.info("%s: compiled in %.1f s", name, benches[name].compile_infer_s + benches[name].train.compile_s)
    peak_fn, peak_flops = matmul_peak_fn(dtype, peak_n)
    fns = {"peak": peak_fn}
    for bench in benches.values():
        fns.update(bench.timed_functions())
    times = time_interleaved(fns, repeats, progress=progress)
    peak = peak_flops / float(np.median(times["peak"])) / 1e9
    models = {name: model_figures(bench, times, peak) for name, bench in benches.items()}
    if all(name in models for name in SINGLE_TASK_MODELS):
        models["single_task_sum"] = single_task_sum(models, peak)
    result = {"matmul_peak_gflops": peak, "matmul_peak_gflops_best": peak_flops / float(times["peak"].min()) / 1e9,
              "models": models}
    return result, benches


# ----------------------------------------------------------------------------------------------------------
# Where the time goes.


def _hlo_op_summaries(hlo_text: str) -> dict[str, str]:
    """Instruction name -> ``shape :: ops`` (the ops inside a fusion; convolutions with their window)."""
    import re

    bodies: dict[str, list[str]] = {}
    current = None
    for line in hlo_text.splitlines():
        header = re.match(r"^(?:ENTRY )?%(\S+) .*\{$", line)
        if header:
            current = header.group(1)
            bodies[current] = []
        elif line.startswith("}"):
            current = None
        elif current is not None:
            bodies[current].append(line.strip())
    instr = re.compile(r"(?:ROOT )?%(\S+) = (\S+) ([\w-]+)\((.*)")
    skip = {"parameter", "constant", "broadcast", "bitcast", "get-tuple-element", "tuple"}
    out = {}
    for lines in bodies.values():
        for line in lines:
            m = instr.match(line)
            if not m:
                continue
            name, shape, op, rest = m.groups()
            ops = [op]
            if op == "fusion":
                called = re.search(r"calls=%([\w.\-]+)", rest)
                ops = []
                for inner in bodies.get(called.group(1), []) if called else []:
                    im = instr.match(inner)
                    if im and im.group(3) not in skip:
                        window = re.search(r"window=\{size=(\S+)", inner) if im.group(3) == "convolution" else None
                        ops.append(f"{im.group(3)}[{window.group(1)}]" if window else im.group(3))
            out[name] = f"{shape} :: {','.join(dict.fromkeys(ops))}"
    return out


def profile_train_step(train: TrainStepBench, steps: int = 3, top: int = 25) -> list[dict[str, Any]]:
    """Per-op time of the train step from a `jax.profiler` trace: the `top` ops by total time.

    XLA:CPU runs its own (Eigen) convolutions asynchronously: their trace events cover only the launch, so
    their time shows in the gap between "(all ops)" and "(step)".

    Returns:
      [{"op": XLA instruction (fusion) name, "ms": milliseconds per step, "share": of all ops' time,
      "what": its shape and the HLO ops inside}], largest first, then rows "(all ops)" (the traced ops'
      total) and "(step)" (wall time of a step while tracing).
    """
    import collections
    import gzip

    train.run()
    with tempfile.TemporaryDirectory(prefix="bigsmall_profile_") as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            start = time.perf_counter()
            for _ in range(steps):
                train.run()
            step_ms = (time.perf_counter() - start) / steps * 1e3
        traces = sorted(Path(tmp).rglob("*perfetto_trace.json.gz"))
        if not traces:
            raise UserError(f"{tmp}: the profiler wrote no perfetto trace")
        with gzip.open(traces[0]) as f:
            events = json.load(f)["traceEvents"]
    what = _hlo_op_summaries(train.compiled.as_text())
    total_us: collections.Counter = collections.Counter()
    for e in events:
        name = e.get("name", "")
        if e.get("ph") == "X" and name in what:
            total_us[name] += e.get("dur", 0)
    all_us = sum(total_us.values()) or 1
    rows = [{"op": name, "ms": us / steps / 1e3, "share": us / all_us, "what": what[name]}
            for name, us in total_us.most_common(top)]
    return rows + [{"op": "(all ops)", "ms": all_us / steps / 1e3, "share": 1.0, "what": ""},
                   {"op": "(step)", "ms": step_ms, "share": step_ms / (all_us / steps / 1e3), "what": ""}]


# ----------------------------------------------------------------------------------------------------------
# The input pipeline.


def benchmark_input_pipeline(train: TrainStepBench, *, data_dir: str | os.PathLike, batch_clips: int,
                             settings: Mapping[str, Any] | None = None, repeats: int = 3, worker_count: int = 0,
                             seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Reading speed of a prepared synthetic dataset, and an epoch of training against the step alone.

    Args:
      train: the train step to run (its model's clip length must match the dataset's).
      data_dir: TFDS data directory; the dataset is built there first if missing.
      batch_clips: clips per batch (all local devices together).
      settings: `bigsmall_jax.synthetic.SyntheticConfig` fields (default `PIPELINE_SYNTHETIC`).
      repeats: epochs timed with the loader, and as many without it, alternately.
      worker_count: grain worker processes of the loader (the trainer's ``dataset.worker_count``).

    Returns:
      {"records_per_s", "batches_per_s", "epoch_s" (the trainer's loop: each step's metrics fetched after the
      next step is dispatched), "step_only_s", "loader_overhead", "epoch_synchronous_s" (metrics fetched
      right after each step, the next batch read only then), "synchronous_overhead", "steps_per_epoch",
      "train_records", "batch_clips", "worker_count", "build_s", "dataset"}.
    """
    from bigsmall_jax.datasets import tfds_builders
    from bigsmall_jax.datasets.input_pipeline import clip_to_model, make_loader
    from bigsmall_jax.datasets.prepare import ensure_dataset
    from bigsmall_jax.train.parallel import shard_batch

    settings = dict(PIPELINE_SYNTHETIC if settings is None else settings)
    t = train.model.config.n_segment
    start = time.perf_counter()
    builder = ensure_dataset("synthetic", data_dir, progress=progress, n_segment=t, **settings)
    build_s = time.perf_counter() - start
    source = tfds_builders.data_source(builder, "train")
    n = len(source)
    steps = n // batch_clips
    if steps < 1:
        raise UserError(f"the pipeline dataset has {n} training clips, fewer than one batch of {batch_clips}")

    def make(epoch: int):
        return make_loader(source, batch_clips=batch_clips, shuffle=True, seed=seed + epoch, num_epochs=1,
                           worker_count=worker_count, drop_remainder=True, shard_by_process=True)

    order = np.random.default_rng(seed).permutation(n)
    start = time.perf_counter()
    for i in order:
        clip_to_model(dict(source[int(i)]))
    records_per_s = n / (time.perf_counter() - start)

    start = time.perf_counter()
    n_batches = sum(1 for _ in make(0))
    batches_per_s = n_batches / (time.perf_counter() - start)

    def epoch_synchronous(epoch: int) -> float:
        """Host batch -> devices -> step -> its metrics fetched, one step after the other."""
        start = time.perf_counter()
        for batch in make(epoch):
            train.run(shard_batch(batch, train.n_devices, t))
        return time.perf_counter() - start

    def epoch_with_loader(epoch: int) -> float:
        """The trainer's loop: each step's metrics are fetched after the next step is dispatched, so the next
        batch is read and sharded while the step runs."""
        start = time.perf_counter()
        pending = None
        for batch in make(epoch):
            metrics = train.dispatch(shard_batch(batch, train.n_devices, t))
            if pending is not None:
                jax.device_get(pending)
            pending = metrics
        jax.device_get(pending)
        return time.perf_counter() - start

    def epoch_step_only() -> float:
        start = time.perf_counter()
        for _ in range(n_batches):
            train.run()
        return time.perf_counter() - start

    epoch_with_loader(0)  # warm-up: fills caches
    with_loader, synchronous, step_only = [], [], []
    for r in tqdm(range(repeats), desc="epochs", unit="epoch", disable=not progress, leave=False):
        with_loader.append(epoch_with_loader(r + 1))
        synchronous.append(epoch_synchronous(r + 1))
        step_only.append(epoch_step_only())
    epoch_s, step_only_s = float(np.median(with_loader)), float(np.median(step_only))
    synchronous_s = float(np.median(synchronous))
    return {"records_per_s": records_per_s, "batches_per_s": batches_per_s, "epoch_s": epoch_s,
            "step_only_s": step_only_s, "loader_overhead": epoch_s / step_only_s - 1.0,
            "epoch_synchronous_s": synchronous_s, "synchronous_overhead": synchronous_s / step_only_s - 1.0,
            "steps_per_epoch": n_batches, "train_records": n, "batch_clips": batch_clips,
            "worker_count": worker_count, "build_s": build_s, "dataset": settings}


# ----------------------------------------------------------------------------------------------------------
# Command line.


def format_table(result: Mapping[str, Any]) -> str:
    """The models' figures as a text table."""
    lines = [f"{result['device']}  dtype={result['dtype']}  batch={result['batch_clips']} clips  "
             f"matmul peak {result['matmul_peak_gflops']:.0f} GFLOP/s  load {result['load_avg']}"]
    header = (f"{'model':<24}{'GFLOP/clip':>11}{'params':>11}{'infer fr/s':>12}{'%peak':>7}{'latency ms':>12}"
              f"{'train clip/s':>14}{'%peak':>7}{'compile s':>11}")
    lines += [header, "-" * len(header)]
    for name, m in result["models"].items():
        lines.append(f"{name:<24}{m['flops_per_clip'] / 1e9:>11.3f}{m['params']:>11,}{m['infer_frames_per_s']:>12.1f}"
                     f"{100 * m['infer_peak_fraction']:>7.1f}{m['infer_latency_ms']:>12.2f}"
                     f"{m['train_clips_per_s']:>14.2f}{100 * m['train_peak_fraction']:>7.1f}{m['compile_s']:>11.1f}")
    profile = result.get("profile")
    if profile:
        lines.append(f"train step of {profile['model']}, costliest ops (jax.profiler; ops run by XLA's own Eigen "
                     "convolutions are timed only partly):")
        for row in profile["ops"]:
            lines.append(f"  {row['ms']:8.1f} ms {100 * row['share']:5.1f}%  {row['op'][:28]:<28} {row['what'][:90]}")
    pipe = result.get("input_pipeline")
    if pipe:
        lines.append(f"input pipeline: {pipe['records_per_s']:.0f} records/s, {pipe['batches_per_s']:.1f} batches/s; "
                     f"epoch {pipe['epoch_s']:.2f} s vs step only {pipe['step_only_s']:.2f} s "
                     f"(loader overhead {100 * pipe['loader_overhead']:+.1f}%; fetching each step's metrics before "
                     f"reading the next batch: {100 * pipe['synchronous_overhead']:+.1f}%)")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bigsmall_jax.benchmark",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help=f"variants to time (default: all): {', '.join(NAMED_VARIANTS)}")
    parser.add_argument("--batch", type=int, default=16, help="clips per batch (the trainer's default: 16)")
    parser.add_argument("--dtype", default="float32", help="compute dtype: float32 or bfloat16")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (medians are reported)")
    parser.add_argument("--quick", action="store_true",
                        help="a fast smoke run: bigsmall only, 2 clips, 2 rounds, a tiny pipeline dataset")
    parser.add_argument("--no-input-pipeline", action="store_true", help="skip the input-pipeline benchmark")
    parser.add_argument("--data-dir", help="TFDS data dir for the pipeline dataset (default: a temporary one)")
    parser.add_argument("--worker-count", type=int, default=0, help="grain workers of the pipeline benchmark")
    parser.add_argument("--no-tune", action="store_true",
                        help="run with XLA's and the allocator's defaults (no tuned presets, no allocator tuning)")
    parser.add_argument("--peak-size", type=int, default=None, help="side of the peak matmul (default 2048 on CPU)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the first model's train step (jax.profiler) and list its costliest ops")
    parser.add_argument("--output", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.dtype not in BENCH_DTYPES:
        raise UserError(f"unknown --dtype {args.dtype!r}; valid: {', '.join(BENCH_DTYPES)}")
    if args.models:
        unknown = [m for m in args.models if m not in NAMED_VARIANTS]
        if unknown:
            raise UserError(f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(NAMED_VARIANTS)}")
    if args.quick:
        args.models = args.models or ["bigsmall"]
        args.batch = 2 if args.batch == parser.get_default("batch") else args.batch
        args.repeats = 2 if args.repeats == parser.get_default("repeats") else args.repeats
    if args.batch < 1 or args.repeats < 1:
        raise UserError(f"--batch and --repeats must be >= 1, got {args.batch} and {args.repeats}")
    if args.output:
        out = Path(args.output)
        if out.is_dir():
            raise file_error(out, "is a directory; --output needs a file name")
        if not out.parent.is_dir():
            raise file_error(out.parent, "no such directory for --output")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark for parsed arguments; returns the JSON-able result."""
    info = device_info()
    on_cpu = info["platform"] == "cpu"
    tuned = on_cpu and not args.no_tune
    runtime = {"allocator": _tune_allocator() if tuned else False,
               "infer_compiler_options": tuned_compiler_options(args.dtype, "infer") if tuned else {},
               "infer_stem_compiler_options": (tuned_compiler_options(args.dtype, "infer_stem")
                                               if tuned and (args.dtype, "infer_stem") in TUNED_YNN_FUSIONS else {}),
               "train_compiler_options": tuned_compiler_options(args.dtype, "train") if tuned else {}}
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    names = list(args.models or DEFAULT_MODELS)
    timings, benches = benchmark_models(names, batch_clips=args.batch, dtype=args.dtype, repeats=args.repeats,
                                        peak_n=args.peak_size, tuned=tuned)
    result = {"device": describe_device(info), "dtype": args.dtype,
              "matmul_peak_gflops": timings["matmul_peak_gflops"],
              "matmul_peak_gflops_best": timings["matmul_peak_gflops_best"],
              "batch_clips": args.batch, "repeats": args.repeats, "device_info": info, "runtime": runtime,
              "models": timings["models"]}
    if not args.no_input_pipeline:
        pipeline_model = "bigsmall" if "bigsmall" in benches else names[0]
        settings = QUICK_PIPELINE_SYNTHETIC if args.quick else PIPELINE_SYNTHETIC
        with contextlib.ExitStack() as stack:
            data_dir = args.data_dir
            if data_dir is None:
                data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bigsmall_bench_"))
            result["input_pipeline"] = {
                "model": pipeline_model,
                **benchmark_input_pipeline(benches[pipeline_model].train, data_dir=data_dir, batch_clips=args.batch,
                                           settings=settings, repeats=2 if args.quick else 3,
                                           worker_count=args.worker_count)}
    if args.profile:
        name = names[0]
        result["profile"] = {"model": name, "ops": profile_train_step(benches[name].train)}
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    result["load_avg"] = {"before": [round(x, 2) for x in load_before] if load_before else None,
                          "after": [round(x, 2) for x in load_after] if load_after else None}
    return result


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    if args.output:
        write_json_atomic(args.output, result, sort_keys=False)
    print(format_table({**result, "load_avg": result["load_avg"]["before"]}))


if __name__ == "__main__":
    main()
