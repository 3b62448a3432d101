"""Evaluate a checkpoint on a split of a prepared dataset, the paper's way.

Usage::

    python -m bigsmall_jax.evaluate --checkpoint runs/bigsmall --dataset synthetic --data-dir DATA \\
        [--config CONFIG] [--split test] [--window-s 30] --output results/test.json

Each video of the split is run through the model whole and scored (`bigsmall_jax.evaluation.evaluate`):
HR and RR (MAE, RMSE, MAPE, Pearson r, SNR, each with its standard error) and per-AU F1, precision, recall
and accuracy. The command prints the table, writes the metrics as JSON and saves plots beside it:
``OUT_hr_bland_altman.png``, ``OUT_rr_bland_altman.png``, ``OUT_au_f1.png`` and, for the first video,
``OUT_waves_hr.png``, ``OUT_waves_rr.png`` and ``OUT_au_activations.png`` (each when the model and labels
allow it). Nothing is left behind if it fails: everything is written to a temporary folder and moved into
place at the end.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from bigsmall_jax.cli import check_not_inside, check_output_file
from bigsmall_jax.datasets.registry import DATASETS
from bigsmall_jax.errors import UserError, cli_main
from bigsmall_jax.evaluation.evaluate import evaluate_checkpoint, format_table, write_results
from bigsmall_jax.evaluation.signals import FINE_PAD, RATE_METHODS

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of ``python -m bigsmall_jax.evaluate`` (`argv`: None for ``sys.argv``)."""
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.evaluate", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="model checkpoint directory, training workdir, or PyTorch .pth")
    p.add_argument("--dataset", required=True, help=f"prepared dataset: {', '.join(DATASETS)}")
    p.add_argument("--data-dir", required=True, help="TFDS data directory the dataset was prepared into")
    p.add_argument("--config", default=None, help="dataset config (default: the only one prepared)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--output", required=True, help="metrics JSON to write; plots go beside it")
    p.add_argument("--window-s", type=float, default=None,
                   help="rates over windows of this many seconds (default: one per video, as the paper)")
    p.add_argument("--method", default="fft", choices=RATE_METHODS,
                   help="rates from the periodogram peak (default, the paper; a grid of fps * 60 / nfft per "
                        f"minute), the same peak on a {FINE_PAD}x finer grid (fine), or the mean interval between the "
                        "wave's peaks (peak)")
    p.add_argument("--batch-clips", type=int, default=16, help="clips per forward pass (default: 16)")
    p.add_argument("--no-plots", action="store_true", help="write the JSON only")
    return p.parse_args(argv)


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    """Evaluates, writes the JSON and plots, and prints the table."""
    args = parse_args(argv)
    output = check_output_file(args.output, ".json", "--output")
    check_not_inside(output, [args.checkpoint, args.data_dir], "--output")
    if args.window_s is not None and not args.window_s > 0:
        raise UserError(f"--window-s must be positive, got {args.window_s}")
    if args.batch_clips < 1:
        raise UserError(f"--batch-clips must be >= 1, got {args.batch_clips}")
    results, predictions = evaluate_checkpoint(args.checkpoint, args.dataset, args.data_dir, args.split,
                                               args.config, args.batch_clips, args.window_s, args.method)
    plot_paths = write_results(results, predictions, output, with_plots=not args.no_plots)
    print(format_table(results))
    log.info("wrote %s%s", output, f" and {len(plot_paths)} plots beside it" if plot_paths else "")


if __name__ == "__main__":
    main()
