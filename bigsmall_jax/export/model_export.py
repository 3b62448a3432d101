"""Exporting a model, or a checkpoint by path or name, to an ONNX or a serialized StableHLO file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bigsmall_jax.checkpoints.load import load_checkpoint
from bigsmall_jax.errors import UserError
from bigsmall_jax.export.onnx_format import write_onnx
from bigsmall_jax.export.signature import Signature, check_batch_clips, check_dtype, eval_forward, model_signature
from bigsmall_jax.export.stablehlo import write_stablehlo

log = logging.getLogger(__name__)

FORMATS: dict[str, str] = {"onnx": ".onnx", "stablehlo": ".stablehlo"}  # format -> file extension


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}; valid: {', '.join(FORMATS)}")
    return fmt


def export_model(model, variables, output: str | os.PathLike, fmt: str, batch_clips: int | str | None = 1,
                 dtype: str = "float32", source: str = "") -> Signature:
    """Writes the evaluation-mode forward pass of ``(model, variables)`` to `output`.

    Args:
      model, variables: what `load_checkpoint` returns (``model.apply(variables, big, small, train=False)``
        gives a dict of heads; ``model.config`` has ``n_segment``, ``big_size``, ``small_size``).
      output: the file to write (atomically: nothing is left there on failure).
      fmt: "onnx" (jax2onnx) or "stablehlo" (`jax.export`).
      batch_clips: N clips per call, or None / "dynamic" for any number.
      dtype: "float32" or "float16" (weights, inputs and computation; outputs float32).
      source: what to record as the export's source (the checkpoint).

    Returns:
      the `Signature` written into the file's metadata.

    Raises:
      UserError: a bad format, batch or dtype, or an op the format cannot express (named).
    """
    fmt, dtype = check_format(fmt), check_dtype(dtype)
    sig = model_signature(model, variables, check_batch_clips(batch_clips), dtype, source)
    if fmt == "onnx":  # a float16 ONNX file is converted from the float32 graph
        write_onnx(eval_forward(model, variables, "float32"), sig, Path(output))
    else:
        write_stablehlo(eval_forward(model, variables, dtype), sig, Path(output))
    return sig


def export_checkpoint(checkpoint: str | os.PathLike, output: str | os.PathLike, fmt: str,
                      batch_clips: int | str | None = 1, dtype: str = "float32") -> Signature:
    """`export_model` of ``load_checkpoint(checkpoint)`` (a model directory, training workdir, ``.pth`` or
    any name `load_checkpoint` knows)."""
    fmt, dtype = check_format(fmt), check_dtype(dtype)
    batch_clips = check_batch_clips(batch_clips)
    model, variables = load_checkpoint(checkpoint)
    return export_model(model, variables, output, fmt, batch_clips, dtype, source=os.fspath(checkpoint))
