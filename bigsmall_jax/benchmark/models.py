"""One model on the bench: its compiled forward passes and train step, timed together, and its figures."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import optax
from tqdm import tqdm

from bigsmall_jax.benchmark.peak import matmul_peak_fn, time_interleaved
from bigsmall_jax.datasets.device_batch import is_packed, pack_batch
from bigsmall_jax.datasets.preprocess import standardize_big
from bigsmall_jax.datasets.recording import BP4D_AU_POS_WEIGHT
from bigsmall_jax.errors import UserError
from bigsmall_jax.model import (
    NAMED_VARIANTS,
    SINGLE_TASK_VARIANTS,
    BigSmall,
    ModelConfig,
    build_model,
    count_params,
    init_variables,
    named_config,
)
from bigsmall_jax.model.flops import forward_cost, lowered_flops
from bigsmall_jax.runtime import Forward, tuned_compiler_options
from bigsmall_jax.train.optim import make_optimizer
from bigsmall_jax.train.parallel import AXIS, check_batch_divisible, put_sharded, replicate, shard_batch
from bigsmall_jax.train.state import create_train_state
from bigsmall_jax.train.step import make_train_step

log = logging.getLogger(__name__)

DEFAULT_MODELS: tuple[str, ...] = tuple(NAMED_VARIANTS)
BENCH_DTYPES: tuple[str, ...] = ("float32", "bfloat16")


# Statistics of uniform random uint8 frames: mean 127.5, std sqrt((256**2 - 1) / 12).
_UNIFORM_U8_MEAN, _UNIFORM_U8_STD = 127.5, 73.9002


def synthetic_batch(config: ModelConfig, n_clips: int, seed: int = 0,
                    big_first_only: bool = False) -> dict[str, np.ndarray]:
    """A training batch of random frames and labels laid out like `bigsmall_jax.datasets.input_pipeline`'s.

    Args:
      big_first_only: only the first Big frame of each clip (what the trainer sends a model with Big
        downsampling).

    Returns:
      {"big": (N*Tb, B, B, 3) uint8 uniform (Tb = 1 with `big_first_only`, else T), "big_mean", "big_std"
      (N*Tb,) float32 (the uniform distribution's), "small": (N*T, S, S, 3) float32 ~ N(0, 1), "au" (N*T, 12)
      in {0, 1}, "bvp", "resp" (N*T,) ~ N(0, 1), and all-ones masks "au_mask", "bvp_mask", "resp_mask",
      "frame_mask"}.
    """
    rng = np.random.default_rng(seed)
    n = n_clips * config.n_segment
    rows = n_clips if big_first_only else n
    return {
        "big": rng.integers(0, 256, (rows, config.big_size, config.big_size, 3), np.uint8),
        "big_mean": np.full(rows, _UNIFORM_U8_MEAN, np.float32),
        "big_std": np.full(rows, _UNIFORM_U8_STD, np.float32),
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

    def dispatch(self, batch: Mapping[str, np.ndarray] | None = None) -> dict[str, jax.Array]:
        """Starts one step on `batch` (default: the resident batch); returns its metrics, (n_devices,) each,
        without waiting.

        `batch` is a loader batch of host arrays (packed, split over the devices and copied as the trainer
        sends it: `device_batch.pack_batch`, `shard_batch`), or a packed batch already split over the devices
        (`train.parallel.prefetch_to_devices`'s)."""
        if batch is None:
            batch = self.batch
        else:
            if not is_packed(batch):
                batch = shard_batch(pack_batch(batch), self.n_devices, self.model.config.n_segment)
            batch = put_sharded(batch, jax.local_devices()[: self.n_devices])
        self.state, metrics = self.compiled(self.state, batch)
        return metrics

    def run(self, batch: Mapping[str, np.ndarray] | None = None) -> dict[str, float]:
        """One step (see `dispatch`); blocks; returns the metrics as floats."""
        return {k: float(v[0]) for k, v in jax.device_get(self.dispatch(batch)).items()}


def make_train_step_bench(model: BigSmall, batch_clips: int, seed: int = 0, lr: float = 1e-3,
                          compiler_options: Mapping[str, Any] | None = None) -> TrainStepBench:
    """The train step of `bigsmall_jax.train` (AdamW, the paper's loss and AU pos_weight, per-clip dropout,
    ``jax.pmap`` over the local devices with the state donated), compiled for `batch_clips` clips.

    `compiler_options` (XLA debug options, e.g. ``{"xla_cpu_experimental_ynn_fusion_type": ""}``) apply to
    this compilation only: experiments compare settings within one process.
    """
    config = model.config
    devices = jax.local_devices()
    check_batch_divisible(batch_clips, len(devices))
    schedule = optax.constant_schedule(lr)
    tx = make_optimizer(schedule)
    pos_weight = BP4D_AU_POS_WEIGHT if config.n_au == len(BP4D_AU_POS_WEIGHT) else None
    step_fn = make_train_step(model, schedule, seed=seed, task_weights={"au": 1.0, "bvp": 1.0, "resp": 1.0},
                              au_pos_weight=pos_weight)
    p_step = jax.pmap(step_fn, axis_name=AXIS, donate_argnums=(0,))
    state = replicate(create_train_state(model, tx, seed), devices)
    host = shard_batch(pack_batch(synthetic_batch(config, batch_clips, seed, big_first_only=model.big_per_clip)),
                       len(devices), config.n_segment)
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
        """Frames per clip."""
        return self.model.config.n_segment

    @property
    def train_flops_per_clip(self) -> float:
        """XLA cost of a train step (all devices) per clip."""
        return self.train.flops * self.train.n_devices / self.batch_clips

    def timed_functions(self) -> dict[str, Callable[[], Any]]:
        """``NAME/infer`` (batched forward), ``NAME/latency`` (one clip), ``NAME/train`` (one step): each
        runs once and blocks."""
        return {f"{self.name}/infer": self.infer_batch, f"{self.name}/latency": self.infer_clip,
                f"{self.name}/train": self.train.run}


def prepare_model(name: str, *, batch_clips: int, dtype: str = "float32", seed: int = 0, tuned: bool = False,
                  label: str | None = None, model: BigSmall | None = None) -> ModelBench:
    """Builds, initializes and compiles (forward on `batch_clips` clips and on one clip, train step) a
    named variant (`bigsmall_jax.model.NAMED_VARIANTS`) computing in `dtype`.

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
    big = jax.device_put(standardize_big(data["big"], _UNIFORM_U8_MEAN, _UNIFORM_U8_STD))
    small = jax.device_put(data["small"])
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
    """The single-task baselines (`bigsmall_jax.model.SINGLE_TASK_VARIANTS`) run one after the other on the
    same frames: costs add, rates combine harmonically (time per frame adds)."""
    parts = [models[name] for name in SINGLE_TASK_VARIANTS]
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
    if all(name in models for name in SINGLE_TASK_VARIANTS):
        models["single_task_sum"] = single_task_sum(models, peak)
    result = {"matmul_peak_gflops": peak, "matmul_peak_gflops_best": peak_flops / float(times["peak"].min()) / 1e9,
              "models": models}
    return result, benches
