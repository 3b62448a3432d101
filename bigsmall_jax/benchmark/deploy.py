"""The deployment runtime on the bench: each model exported to ONNX and run by ONNX Runtime on the CPU,
timed next to the same model in JAX, with the size of each exported file.

``python -m bigsmall_jax.benchmark --deploy``: BigSmall and the paper's three single-task models (and their
sum, the three run one after the other on the same clip), exported the same way (dynamic clip count,
float32). For each: ``onnx_latency_ms`` / ``jax_latency_ms`` (one clip of T frames), ``onnx_frames_per_s``
/ ``jax_frames_per_s`` (``batch_clips`` clips per call), ``onnx_bytes`` / ``stablehlo_bytes`` (the files
of ``python -m bigsmall_jax.export``). All calls interleave round by round (`peak.time_interleaved`) and
each figure is the median, so load from other processes hits both runtimes alike. JAX runs the jitted
forward pass with the tuned XLA:CPU presets (`bigsmall_jax.runtime.Forward`), as ``infer`` does; ONNX
Runtime runs with its default graph optimizations and threads.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from bigsmall_jax.benchmark.models import synthetic_batch
from bigsmall_jax.benchmark.peak import describe_device, device_info, load_average, time_interleaved
from bigsmall_jax.datasets.device_batch import device_big
from bigsmall_jax.export import export_model, onnx_session
from bigsmall_jax.export.onnx_format import optional_module
from bigsmall_jax.model import SINGLE_TASK_VARIANTS, abstract_variables, build_model, count_params, named_config
from bigsmall_jax.runtime import Forward

log = logging.getLogger(__name__)

DEPLOY_MODELS: tuple[str, ...] = ("bigsmall", *SINGLE_TASK_VARIANTS)


def _onnx_call(session, big: np.ndarray, small: np.ndarray) -> Callable[[], Any]:
    names = [o.name for o in session.get_outputs()]
    return lambda: session.run(names, {"big": big, "small": small})


def random_variables(model, seed: int = 0):
    """Variables of `model` drawn from N(0, 0.05^2) with NumPy: what the timings need (not zeros, which a
    graph optimizer could fold away), without the cost of the model's own initializers."""
    rng = np.random.default_rng(seed)
    draw = lambda s: (0.05 * rng.standard_normal(s.shape)).astype(s.dtype)
    return jax.tree_util.tree_map(draw, abstract_variables(model))


def prepare_deploy_model(name: str, folder: Path, batch_clips: int, tuned: bool, seed: int = 0
                         ) -> tuple[dict[str, Any], dict[str, Callable[[], Any]]]:
    """Exports a named variant (random weights: the speed does not depend on them) to ONNX and StableHLO in
    `folder` and compiles its JAX forward passes.

    Returns:
      ({"params", "n_segment", "onnx_bytes", "stablehlo_bytes"}, {"NAME/onnx_clip", "NAME/onnx_batch",
      "NAME/jax_clip", "NAME/jax_batch": run once and block}).
    """
    model = build_model(named_config(name))
    variables = random_variables(model, seed)
    onnx_path, hlo_path = folder / f"{name}.onnx", folder / f"{name}.stablehlo"
    export_model(model, variables, onnx_path, "onnx", "dynamic", source=name)
    export_model(model, variables, hlo_path, "stablehlo", "dynamic", source=name)
    session, _ = onnx_session(onnx_path)
    t = model.config.n_segment
    data = synthetic_batch(model.config, batch_clips, seed)
    big, small = np.asarray(device_big(data)), data["small"]  # standardized float32, as the exported file takes
    forward = Forward(model, tuned=tuned)
    jax_batch = forward.compile(variables, big, small)
    jax_clip = forward.compile(variables, big[:t], small[:t])
    fns = {f"{name}/onnx_clip": _onnx_call(session, big[:t], small[:t]),
           f"{name}/onnx_batch": _onnx_call(session, big, small),
           f"{name}/jax_clip": lambda: jax.block_until_ready(jax_clip(variables, big[:t], small[:t])),
           f"{name}/jax_batch": lambda: jax.block_until_ready(jax_batch(variables, big, small))}
    info = {"params": count_params(variables["params"]), "n_segment": t,
            "onnx_bytes": onnx_path.stat().st_size, "stablehlo_bytes": hlo_path.stat().st_size}
    return info, fns


def _figures(name: str, info: dict[str, Any], times: dict[str, np.ndarray], frames: int) -> dict[str, Any]:
    """One model's JSON entry from its timings (seconds per call; `frames` per batch call)."""
    med = lambda k: float(np.median(times[f"{name}/{k}"]))
    return {**info,
            "onnx_latency_ms": 1e3 * med("onnx_clip"), "jax_latency_ms": 1e3 * med("jax_clip"),
            "onnx_frames_per_s": frames / med("onnx_batch"), "jax_frames_per_s": frames / med("jax_batch")}


def single_task_sum(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The three single-task models together on the same frames: latencies, parameters and bytes add up,
    throughputs combine as 1 / sum(1 / rate)."""
    parts = [models[n] for n in SINGLE_TASK_VARIANTS]
    out = {k: sum(p[k] for p in parts) for k in ("params", "onnx_bytes", "stablehlo_bytes", "onnx_latency_ms",
                                                 "jax_latency_ms")}
    for k in ("onnx_frames_per_s", "jax_frames_per_s"):
        out[k] = 1.0 / sum(1.0 / p[k] for p in parts)
    return out


def run_deploy_benchmark(models: Sequence[str] | None = None, *, batch_clips: int = 16, repeats: int = 10,
                         tuned: bool = True) -> dict[str, Any]:
    """Exports and times every model (default `DEPLOY_MODELS`); returns the JSON-able result:
    {"device", "batch_clips", "repeats", "onnxruntime", "models": {name: figures}, ["single_task_sum"],
    "load_avg": {"before", "after"}}."""
    onnxruntime = optional_module("onnxruntime")
    names = list(models or DEPLOY_MODELS)
    info = device_info()
    tuned = tuned and info["platform"] == "cpu"
    load_before = load_average()
    infos, fns = {}, {}
    with tempfile.TemporaryDirectory(prefix="bigsmall_deploy_") as folder:
        for name in tqdm(names, desc="export + compile", unit="model", leave=False):
            infos[name], model_fns = prepare_deploy_model(name, Path(folder), batch_clips, tuned)
            fns.update(model_fns)
        times = time_interleaved(fns, repeats)
    result = {"device": describe_device(info), "batch_clips": batch_clips, "repeats": repeats,
              "onnxruntime": onnxruntime.__version__, "jax": jax.__version__,
              "models": {n: _figures(n, infos[n], times, batch_clips * infos[n]["n_segment"]) for n in names}}
    if all(n in names for n in SINGLE_TASK_VARIANTS):
        result["single_task_sum"] = single_task_sum(result["models"])
    result["load_avg"] = {"before": load_before, "after": load_average()}
    return result


def format_deploy_table(result: dict[str, Any]) -> str:
    """The figures as a text table, one row per model (and the single-task sum)."""
    lines = [f"{result['device']}  ONNX Runtime {result['onnxruntime']} vs JAX {result['jax']}  "
             f"batch={result['batch_clips']} clips  load {result['load_avg']['before']}"]
    header = (f"{'model':<18}{'params':>11}{'ONNX MB':>9}{'HLO MB':>8}{'ORT ms/clip':>13}{'JAX ms/clip':>13}"
              f"{'ORT fr/s':>10}{'JAX fr/s':>10}")
    lines += [header, "-" * len(header)]
    rows = {**result["models"], **({"single_task_sum": result["single_task_sum"]}
                                   if "single_task_sum" in result else {})}
    for name, m in rows.items():
        lines.append(f"{name:<18}{m['params']:>11,}{m['onnx_bytes'] / 1e6:>9.2f}{m['stablehlo_bytes'] / 1e6:>8.2f}"
                     f"{m['onnx_latency_ms']:>13.2f}{m['jax_latency_ms']:>13.2f}{m['onnx_frames_per_s']:>10.1f}"
                     f"{m['jax_frames_per_s']:>10.1f}")
    return "\n".join(lines)


__all__ = ["DEPLOY_MODELS", "format_deploy_table", "run_deploy_benchmark", "single_task_sum"]
