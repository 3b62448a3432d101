"""Serialized StableHLO with `jax.export`: the forward pass as a versioned, portable program that
``jax.export.deserialize(open(path, "rb").read()).call(...)`` runs in any later JAX, no Python model code.

The exported function takes ``{"big": (N*T, 144, 144, 3), "small": (N*T, 9, 9, 3)}`` and returns
``{head: (N*T, k)}``: the serialized program's input and output trees carry the names, its avals the shapes
and dtypes. A dynamic export has the symbolic first axis ``T*N`` (jax.export checks at call time that the
frame count is a multiple of T). The program is lowered for CPU, CUDA and TPU at once (`PLATFORMS`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import jax

from bigsmall_jax import files
from bigsmall_jax.errors import file_error
from bigsmall_jax.export.signature import EXPORT_DTYPES, Signature

log = logging.getLogger(__name__)

PLATFORMS: tuple[str, ...] = ("cpu", "cuda", "tpu")


def input_specs(sig: Signature) -> dict[str, jax.ShapeDtypeStruct]:
    """The abstract inputs of `sig`: fixed shapes, or the first axis ``T*N`` with one symbol N shared by both."""
    dtype = EXPORT_DTYPES[sig.dtype]
    if sig.batch_clips is None:
        (n,) = jax.export.symbolic_shape("N")
        return {s.name: jax.ShapeDtypeStruct((sig.n_segment * n, *s.shape[1:]), dtype) for s in sig.inputs}
    return {s.name: jax.ShapeDtypeStruct(s.shape, dtype) for s in sig.inputs}


def export_stablehlo(forward: Callable, sig: Signature, platforms: tuple[str, ...] = PLATFORMS) -> jax.export.Exported:
    """`jax.export.Exported` of `forward` (``(big, small) -> {head: array}``) taking a dict of `sig`'s inputs."""
    fn = jax.jit(lambda inputs: forward(inputs["big"], inputs["small"]))
    return jax.export.export(fn, platforms=platforms)(input_specs(sig))


def write_stablehlo(forward: Callable, sig: Signature, output: str | os.PathLike,
                    platforms: tuple[str, ...] = PLATFORMS) -> Path:
    """Exports and writes the serialized program atomically (nothing is left at `output` on failure).

    Raises:
      UserError: JAX cannot export the function (an op without a stable serialization, e.g. a host
        callback), naming the problem.
    """
    output = Path(output)
    try:
        data = export_stablehlo(forward, sig, platforms).serialize()
    except (ValueError, NotImplementedError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        kind = "unsupported op: " if isinstance(e, NotImplementedError) else ""
        raise file_error(output, f"cannot export to StableHLO: {kind}{first}") from e
    with files.atomic_path(output, ".stablehlo") as tmp:
        tmp.write_bytes(bytes(data))
    log.info("wrote %s (%.2f MB, platforms %s)", output, len(data) / 1e6, ", ".join(platforms))
    return output


def load_stablehlo(path: str | os.PathLike) -> jax.export.Exported:
    """The `jax.export.Exported` in a file `write_stablehlo` wrote; ``.call({"big": ..., "small": ...})`` runs it.

    Raises:
      UserError: the file is missing or not a serialized JAX export.
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(path, "no such StableHLO file")
    try:
        return jax.export.deserialize(bytearray(path.read_bytes()))
    except Exception as e:  # flatbuffers raises assorted errors on garbage
        raise file_error(path, f"not a serialized jax.export program ({type(e).__name__}: {e})") from None
