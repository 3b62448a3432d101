"""Export a checkpoint's evaluation-mode forward pass to ONNX or serialized StableHLO.

Usage::

    python -m bigsmall_jax.export --checkpoint DIR_OR_NAME --format onnx|stablehlo --output PATH
        [--batch-clips N|dynamic] [--dtype float32|float16]

The file takes ``big`` (N*T, 144, 144, 3) and ``small`` (N*T, 9, 9, 3) (T = the model's ``n_segment``
frames per clip, N = ``--batch-clips`` clips, default 1; ``dynamic``: any whole number of clips) and gives
the model's heads (``au`` (N*T, 12) logits, ``bvp`` and ``resp`` (N*T, 1)); names, shapes, dtypes and the
model's configuration are in the file (ONNX ``metadata_props``; the StableHLO program's input and output
trees). ONNX files run with ONNX Runtime (``python -m bigsmall_jax.infer VIDEO --checkpoint OUT.onnx
--runtime onnx``); StableHLO files with ``jax.export.deserialize(data).call({"big": ..., "small": ...})``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

from bigsmall_jax.cli import check_not_inside, check_output_file
from bigsmall_jax.errors import cli_main
from bigsmall_jax.export.model_export import FORMATS, check_format, export_checkpoint
from bigsmall_jax.export.signature import EXPORT_DTYPES, check_batch_clips, check_dtype


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of ``python -m bigsmall_jax.export`` (`argv`: None for ``sys.argv``)."""
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.export", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="model checkpoint directory, training workdir, .pth, or a name load_checkpoint knows")
    p.add_argument("--format", required=True, help=f"{' or '.join(FORMATS)}")
    p.add_argument("--output", required=True, help="file to write (.onnx or .stablehlo)")
    p.add_argument("--batch-clips", default="1", help="clips per call, or 'dynamic' (default: 1)")
    p.add_argument("--dtype", default="float32", help=f"{' or '.join(EXPORT_DTYPES)} (default: float32)")
    return p.parse_args(argv)


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    """Checks the flags, exports, and prints a one-line JSON summary."""
    args = parse_args(argv)
    fmt, dtype = check_format(args.format), check_dtype(args.dtype)
    batch = check_batch_clips(args.batch_clips)
    output = check_output_file(args.output, FORMATS[fmt], "--output")
    check_not_inside(output, [args.checkpoint] if os.path.exists(args.checkpoint) else [], "--output")
    sig = export_checkpoint(args.checkpoint, output, fmt, batch, dtype)
    print(json.dumps({"output": os.fspath(output), "format": fmt, "bytes": Path(output).stat().st_size,
                      "n_segment": sig.n_segment, "batch_clips": sig.batch_clips or "dynamic", "dtype": sig.dtype,
                      "inputs": [t.to_dict() for t in sig.inputs], "outputs": [t.to_dict() for t in sig.outputs]}))


if __name__ == "__main__":
    main()
