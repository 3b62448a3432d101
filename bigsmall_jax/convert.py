"""Import PyTorch BigSmall state dicts (multitask or single pathway) into bigsmall-jax checkpoints.

    python -m bigsmall_jax.convert SRC.pth OUT_DIR [--variant NAME] [--task bvp|resp] [--n-segment 3] [--overwrite]

Works without PyTorch; `bigsmall_jax.checkpoints.torch_import` says how the model is detected and mapped.
Several of the authors' models share the same keys (BigSmall with WTSM, TSM or no shift, with or without Big
downsampling): ``--variant`` (a ``NAMED_VARIANTS`` name or the authors' class name, e.g.
``BigSmallSlowFastTSM``) says which; without it the keys decide, and the paper's model where they cannot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bigsmall_jax.checkpoints.model_dir import check_replaceable, save_checkpoint
from bigsmall_jax.checkpoints.torch_import import convert_file
from bigsmall_jax.cli import check_output_dir
from bigsmall_jax.errors import cli_main, file_error
from bigsmall_jax.model import count_params
from bigsmall_jax.model.variants import variants_of


def check_out_dir(src: Path, out_dir: Path, overwrite: bool) -> None:
    """Checks, before anything is read, that writing `out_dir` cannot delete the source or unrelated files.

    Raises:
      UserError: `out_dir` is the current directory, the source file or a folder holding it, an existing
        path `save_checkpoint` would refuse (`check_replaceable`), or a place that cannot be written (under a
        file, read-only: checked by writing a probe, so the error comes before orbax starts).
    """
    target, source = out_dir.resolve(), src.resolve()
    if target == Path.cwd().resolve():
        raise file_error(out_dir, "is the current directory; give a new folder for the checkpoint")
    if target == source:
        raise file_error(out_dir, "is the source file; give a new folder for the checkpoint")
    if target in source.parents:
        raise file_error(out_dir, f"holds the source file {src}; give a new folder for the checkpoint")
    check_replaceable(out_dir, overwrite)
    # The checkpoint is written beside OUT_DIR and renamed: its folder must be writable.
    check_output_dir(out_dir.absolute().parent if out_dir.exists() else out_dir, "OUT_DIR")


@cli_main
def main(argv=None) -> None:
    """Converts SRC into the checkpoint directory OUT_DIR and prints a one-line summary."""
    parser = argparse.ArgumentParser(prog="python -m bigsmall_jax.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="PyTorch state dict (.pth)")
    parser.add_argument("out_dir", type=Path, help="checkpoint directory to write")
    parser.add_argument("--variant", help="the model: a NAMED_VARIANTS name or the authors' class name "
                                           "(default: as the keys show, the paper's model where several fit)")
    parser.add_argument("--task", choices=["bvp", "resp"], help="what a one-output Small pathway predicts")
    parser.add_argument("--n-segment", type=int, default=3, help="frames per clip (default 3)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    args = parser.parse_args(argv)
    check_out_dir(args.src, args.out_dir, args.overwrite)
    config, variables = convert_file(args.src, args.task, args.n_segment, args.variant)
    save_checkpoint(args.out_dir, config, variables, metadata={"converted_from": args.src.name},
                    overwrite=args.overwrite)
    heads = ", ".join(f"{h}({n})" for h, n in config.heads)
    named = "/".join(variants_of(config)) or "no named variant"
    print(f"{args.src} -> {args.out_dir}: {config.variant} model ({named}), heads {heads}, "
          f"{count_params(variables['params']):,} parameters")


if __name__ == "__main__":
    main()
