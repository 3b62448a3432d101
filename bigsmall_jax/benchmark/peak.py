"""The machine the benchmark runs on: its facts, the peak a large matmul reaches, and interleaved timing."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from bigsmall_jax.model.config import DTYPES


def _cpu_model() -> str:
    """The host CPU's model name (``/proc/cpuinfo``; elsewhere what `platform` knows)."""
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


def load_average() -> list[float] | None:
    """The machine's 1, 5 and 15 minute load averages (rounded to 0.01), or None where the OS has none."""
    if not hasattr(os, "getloadavg"):
        return None
    return [round(x, 2) for x in os.getloadavg()]


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
