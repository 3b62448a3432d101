"""Where the time of a train step goes: a `jax.profiler` trace summed by XLA op."""

from __future__ import annotations

import collections
import gzip
import json
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax

from bigsmall_jax.benchmark.models import TrainStepBench
from bigsmall_jax.errors import UserError

_HEADER = re.compile(r"^(?:ENTRY )?%(\S+) .*\{$")
_INSTRUCTION = re.compile(r"(?:ROOT )?%(\S+) = (\S+) ([\w-]+)\((.*)")
_CALLS = re.compile(r"calls=%([\w.\-]+)")
_WINDOW = re.compile(r"window=\{size=(\S+)")
# HLO ops that only move or name data: left out of a fusion's summary.
_PLUMBING = frozenset({"parameter", "constant", "broadcast", "bitcast", "get-tuple-element", "tuple"})


def _hlo_computations(hlo_text: str) -> dict[str, list[str]]:
    """Computation name -> its instruction lines (stripped), from HLO text."""
    bodies: dict[str, list[str]] = {}
    current = None
    for line in hlo_text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = header.group(1)
            bodies[current] = []
        elif line.startswith("}"):
            current = None
        elif current is not None:
            bodies[current].append(line.strip())
    return bodies


def _fusion_ops(body: Sequence[str]) -> list[str]:
    """The ops of a fused computation's lines, in order, plumbing left out; a convolution as
    ``convolution[WINDOW]`` (e.g. ``convolution[3x3]``)."""
    ops = []
    for line in body:
        m = _INSTRUCTION.match(line)
        if m and m.group(3) not in _PLUMBING:
            window = _WINDOW.search(line) if m.group(3) == "convolution" else None
            ops.append(f"{m.group(3)}[{window.group(1)}]" if window else m.group(3))
    return ops


def _hlo_op_summaries(hlo_text: str) -> dict[str, str]:
    """Instruction name -> ``shape :: ops`` (the ops inside a fusion; convolutions with their window)."""
    bodies = _hlo_computations(hlo_text)
    out = {}
    for lines in bodies.values():
        for line in lines:
            m = _INSTRUCTION.match(line)
            if not m:
                continue
            name, shape, op, rest = m.groups()
            ops = [op]
            if op == "fusion":
                called = _CALLS.search(rest)
                ops = _fusion_ops(bodies.get(called.group(1), [])) if called else []
            out[name] = f"{shape} :: {','.join(dict.fromkeys(ops))}"
    return out


def _trace_steps(train: TrainStepBench, steps: int) -> tuple[list[dict[str, Any]], float]:
    """Runs `steps` train steps under `jax.profiler`; returns (the perfetto trace's events, ms per step)."""
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
            return json.load(f)["traceEvents"], step_ms


def _op_rows(events: Sequence[Mapping[str, Any]], what: Mapping[str, str], steps: int, step_ms: float,
             top: int) -> list[dict[str, Any]]:
    """The `top` ops of `what` by their events' total duration (microseconds), then "(all ops)", "(step)"."""
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


def profile_train_step(train: TrainStepBench, steps: int = 3, top: int = 25) -> list[dict[str, Any]]:
    """Per-op time of the train step from a `jax.profiler` trace: the `top` ops by total time.

    XLA:CPU runs its own (Eigen) convolutions asynchronously: their trace events cover only the launch, so
    their time shows in the gap between "(all ops)" and "(step)".

    Returns:
      [{"op": XLA instruction (fusion) name, "ms": milliseconds per step, "share": of all ops' time,
      "what": its shape and the HLO ops inside}], largest first, then rows "(all ops)" (the traced ops'
      total) and "(step)" (wall time of a step while tracing).
    """
    train.run()
    events, step_ms = _trace_steps(train, steps)
    return _op_rows(events, _hlo_op_summaries(train.compiled.as_text()), steps, step_ms, top)
