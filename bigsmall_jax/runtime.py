"""How the model runs fastest on the machine at hand: XLA:CPU presets, the allocator, and the compiled
eval-mode forward pass (`Forward`) that evaluation, inference and the benchmark share.

XLA:CPU hands some ops to the YNNPACK library (``--xla_cpu_experimental_ynn_fusion_type``) and runs the
rest itself, convolutions with Eigen. Which is faster depends on the op: docs/benchmark.md measures each
choice. `TUNED_YNN_FUSIONS` holds the measured presets, `tuned_compiler_options` gives one as options for a
single compilation, and `configure_cpu_runtime` applies one to a whole process (the train and infer
commands call it first thing). GPU and TPU programs are unaffected by any of this.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import jax

from bigsmall_jax.errors import UserError
from bigsmall_jax.model import BigSmall, big_stem

log = logging.getLogger(__name__)

YNN_FLAG = "xla_cpu_experimental_ynn_fusion_type"
# Which ops XLA:CPU hands to YNNPACK, per compute dtype and purpose. YNNPACK fuses a convolution with the
# elementwise ops after it, but runs most of its kernels here on one core; XLA's own (Eigen) convolutions
# use every core; XLA's default set hands YNNPACK every convolution, the weight gradients included, which
# it runs 2-4x slower than Eigen.
# * train: dots, elementwise ops (a convolution feeding them joins them: conv + bias + ReLU, and the
#   input-gradient convolution with the ReLU mask) and reductions (bias gradients) go to YNNPACK, the
#   weight-gradient convolutions stay with Eigen. In bfloat16 without elementwise fusions, which would pull
#   every matmul's bfloat16 conversion into YNNPACK kernels 2-3x slower than XLA's.
# * infer: nothing goes to YNNPACK, so that every convolution runs on all cores ...
# * infer_stem: ... except the Big branch's first convolution (4 input channels), which YNNPACK runs 2.7x
#   faster than Eigen (conv + bias + ReLU in one kernel). XLA picks one set per program, so `Forward` runs
#   that layer as a program of its own.
YNN_FUSION_TYPES: dict[str, int] = {"dot": 1, "eltwise": 2, "reduce": 3, "individual_dot": 4,
                                    "individual_convolution": 5}
TUNED_YNN_FUSIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("float32", "train"): ("individual_dot", "eltwise", "reduce"),
    ("bfloat16", "train"): ("individual_dot", "reduce"),
    ("float32", "infer"): (),
    ("bfloat16", "infer"): (),
    ("float32", "infer_stem"): ("individual_convolution", "eltwise"),
}
PURPOSES: tuple[str, ...] = ("train", "infer")  # what a whole process can be configured for

# glibc mallopt parameters.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8


def tuned_compiler_options(dtype: str, purpose: str) -> dict[str, str]:
    """XLA compile options (``jax.jit(f, compiler_options=...)``) of the tuned preset."""
    try:
        names = TUNED_YNN_FUSIONS[dtype, purpose]
    except KeyError:
        raise UserError(f"no tuned XLA preset for dtype {dtype!r} and purpose {purpose!r}; valid: "
                        f"{sorted(TUNED_YNN_FUSIONS)}") from None
    return {YNN_FLAG: ",".join(str(YNN_FUSION_TYPES[n]) for n in names)}


def tuned_xla_flags(dtype: str, purpose: str) -> tuple[str, ...]:
    """The same preset as ``XLA_FLAGS`` entries, for a whole process."""
    tuned_compiler_options(dtype, purpose)  # validates
    return (f"--{YNN_FLAG}={','.join(TUNED_YNN_FUSIONS[dtype, purpose])}",)


def user_set_ynn_flag() -> bool:
    """Whether the user's ``XLA_FLAGS`` choose the YNNPACK fusions themselves (their choice then wins)."""
    return YNN_FLAG in os.environ.get("XLA_FLAGS", "")


def _backends_initialized() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a JAX without this helper: assume the worst
        return True


def _tune_allocator() -> bool:
    """glibc malloc keeps freed memory (no ``mmap`` per large buffer, no trimming, one arena).

    XLA:CPU allocates every large buffer of every step afresh; by default glibc maps each with ``mmap`` and
    unmaps it on free, so each step touches new pages and pays a page fault per 4 KiB (costly in a VM).
    Returns whether the settings took (False off glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = [mallopt(_M_MMAP_MAX, 0), mallopt(_M_TRIM_THRESHOLD, 2**31 - 1), mallopt(_M_TOP_PAD, 64 << 20),
          mallopt(_M_ARENA_MAX, 1)]
    return all(r == 1 for r in ok)


def configure_cpu_runtime(*, dtype: str = "float32", purpose: str = "train", xla_flags: bool = True,
                          allocator: bool = True) -> dict[str, Any]:
    """Process-wide settings that make the model faster on a CPU; call before JAX runs anything.

    ``python -m bigsmall_jax.train`` calls it with ``purpose="train"``, ``bigsmall_jax.infer`` with
    ``purpose="infer"`` (the benchmark sets the same presets per compilation).

    Args:
      dtype: the compute dtype the process runs (``"float32"`` or ``"bfloat16"``).
      purpose: ``"train"`` or ``"infer"``: what the process mostly runs (`TUNED_YNN_FUSIONS`).
      xla_flags: append `tuned_xla_flags` to ``XLA_FLAGS`` (unless the flag is already set there; skipped,
        with a warning, once a JAX backend is running: XLA reads the variable when it starts). It only
        changes XLA:CPU; GPU and TPU programs are unaffected.
      allocator: tune glibc malloc (`_tune_allocator`). Freed memory then stays with the process.

    Returns:
      {"xla_flags": the flags added, "allocator": whether the allocator settings took}.
    """
    if purpose not in PURPOSES:
        raise UserError(f"unknown purpose {purpose!r}; valid: {', '.join(PURPOSES)}")
    added: list[str] = []
    if xla_flags:
        current = os.environ.get("XLA_FLAGS", "")
        wanted = [f for f in tuned_xla_flags(dtype, purpose) if f.split("=")[0] not in current]
        if wanted and _backends_initialized():
            log.warning("JAX is already running: XLA flags %s not applied", " ".join(wanted))
        elif wanted:
            os.environ["XLA_FLAGS"] = " ".join([current, *wanted]).strip()
            added = wanted
    return {"xla_flags": added, "allocator": _tune_allocator() if allocator else False}


class Forward:
    """The jitted eval-mode forward pass of a model: ``forward(variables, big, small)`` -> the outputs of
    ``model.apply(variables, big, small, train=False)`` (a dict of (N*T, ...) float32 arrays; inputs as
    `bigsmall_jax.model.bigsmall.BigSmall` takes them). Compiled once per input shape.

    On a CPU with the tuned presets (`tuned`), a model with a Big branch runs as two programs: the Big
    branch's first conv + bias + ReLU on the frames it sees (`bigsmall_jax.model.bigsmall.big_stem`, with YNNPACK:
    2.7x faster there than Eigen) and the rest (``from_stem=True``, every convolution in Eigen on all
    cores): XLA:CPU picks one convolution library per program, and this layer wants the other one. The
    outputs equal the one-program forward pass to float32 rounding (~1e-7). Elsewhere (GPU, TPU,
    ``tuned=False``, bfloat16, Small-only models) one program.

    Args:
      model: a `BigSmall` module.
      tuned: use the `TUNED_YNN_FUSIONS` presets; default: on a CPU, unless ``XLA_FLAGS`` choose the YNNPACK
        fusions themselves.
    """

    def __init__(self, model: BigSmall, tuned: bool | None = None):
        self.model = model
        on_cpu = jax.default_backend() == "cpu"
        self.tuned = on_cpu and (not user_set_ynn_flag() if tuned is None else bool(tuned))
        dtype = model.config.dtype
        self.split = self.tuned and model.has_big and (dtype, "infer_stem") in TUNED_YNN_FUSIONS
        body_options = tuned_compiler_options(dtype, "infer") if self.tuned else None
        self._body = jax.jit(functools.partial(model.apply, train=False, from_stem=self.split),
                             compiler_options=body_options)
        self._stem = None
        if self.split:
            self._stem = jax.jit(functools.partial(big_stem, model),
                                 compiler_options=tuned_compiler_options(dtype, "infer_stem"))

    def __call__(self, variables, big, small) -> dict[str, jax.Array]:
        self.model.check_inputs(big, small)
        if self._stem is not None:
            big = self._stem(variables, big)
        return self._body(variables, big, small)

    def compile(self, variables, big, small) -> Callable[[Any, Any, Any], dict[str, jax.Array]]:
        """Ahead-of-time compiled for these inputs' shapes (what the benchmark times, compile apart)."""
        self.model.check_inputs(big, small)
        if self._stem is None:
            return self._body.lower(variables, big, small).compile()
        stem = self._stem.lower(variables, big).compile()
        body = self._body.lower(variables, jax.eval_shape(self._stem, variables, big), small).compile()
        return lambda v, b, s: body(v, stem(v, b), s)
