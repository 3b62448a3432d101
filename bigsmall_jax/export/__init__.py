"""Exporting the evaluation-mode model for deployment: ONNX (jax2onnx, run with ONNX Runtime) and serialized
StableHLO (`jax.export`).

``python -m bigsmall_jax.export --checkpoint DIR_OR_NAME --format onnx|stablehlo --output PATH
[--batch-clips N|dynamic] [--dtype float32|float16]``. Inside: `signature` (the exported function, its
inputs, outputs and metadata), `onnx_format`, `stablehlo`, `model_export` (`export_model`,
`export_checkpoint`).
"""

from bigsmall_jax.export.model_export import FORMATS, export_checkpoint, export_model
from bigsmall_jax.export.onnx_format import onnx_session
from bigsmall_jax.export.signature import Signature, eval_forward
from bigsmall_jax.export.stablehlo import load_stablehlo

__all__ = ["FORMATS", "Signature", "eval_forward", "export_checkpoint", "export_model", "load_stablehlo",
           "onnx_session"]
