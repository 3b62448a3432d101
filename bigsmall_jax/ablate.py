"""Train several model variants with several seeds and write the paper-style ablation table.

    python -m bigsmall_jax.ablate --variants NAME,NAME,... --seeds N [--config NAME] [key=value ...] --workdir DIR

NAME is a `bigsmall_jax.model.NAMED_VARIANTS` name or the authors' class name (``BSSFWTSM_BiDirLatConn``).
Each run is an ordinary training run (``python -m bigsmall_jax.train``) in ``DIR/<variant>/seed<k>`` with the
config, the variant's model fields, ``seed=k`` and the overrides given here: it resumes when run again, and
``--list-runs`` prints every run's train command so that runs can be farmed out to other machines (run this
command again afterwards to collect them). A rerun skips finished runs (those with a ``metrics.json``).

Writes ``DIR/ablation.md``, ``DIR/ablation.json`` (per variant: GFLOPs per clip, parameters, inference
frames/s, AU F1 mean and per AU, HR and RR MAE/RMSE/Pearson r, each mean ± std over seeds) and
``DIR/ablation.png`` (accuracy against cost per task), and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from bigsmall_jax.errors import cli_main
from bigsmall_jax.runtime import configure_cpu_runtime
from bigsmall_jax.train import ablation
from bigsmall_jax.train.__main__ import CPU_PRESETS_ENV
from bigsmall_jax.train.__main__ import run as train_run
from bigsmall_jax.train.config import DEFAULT_CONFIG, model_config

log = logging.getLogger("bigsmall_jax.ablate")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.ablate", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", required=True, help="comma-separated variant names")
    p.add_argument("--seeds", type=int, default=3, help="runs per variant, seeds 0..N-1 (default 3)")
    p.add_argument("--config", default=None, help="training config name or file (default: synthetic)")
    p.add_argument("--workdir", required=True, type=Path, help="ablation directory")
    p.add_argument("--speed-batch", type=int, default=16, help="clips per batch when timing inference")
    p.add_argument("--speed-repeats", type=int, default=10, help="timed inference calls per variant")
    p.add_argument("--list-runs", action="store_true", help="print every run's train command and stop")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every run")
    return p.parse_args(argv)


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    logging.getLogger("absl").setLevel(logging.WARNING)
    args = parse_args(argv)
    if os.environ.get(CPU_PRESETS_ENV, "1") != "0":  # before JAX starts, as the train command does
        configure_cpu_runtime(purpose="train")
    specs = ablation.plan_runs(args.variants.split(","), args.seeds, args.config, args.overrides, args.workdir)
    if args.list_runs:
        print("\n".join(spec.command for spec in specs))
        return
    for i, spec in enumerate(specs):
        if spec.finished:
            ablation.check_finished_run(spec)
            log.info("run %d/%d %s seed %d: finished, skipped", i + 1, len(specs), spec.variant, spec.seed)
            continue
        log.info("run %d/%d %s seed %d: training in %s", i + 1, len(specs), spec.variant, spec.seed, spec.workdir)
        if train_run(list(spec.argv)).stopped_early:
            log.info("stopped in %s; run the same command again to resume", spec.workdir)
            return
    costs = {}
    for spec in specs:
        if spec.variant not in costs:
            config = model_config(ablation.run_config(spec))
            costs[spec.variant] = ablation.variant_cost(config, args.workdir / spec.variant / "cost.json",
                                                        args.speed_batch, args.speed_repeats)
    table = ablation.summarize(specs, costs)
    seeds = f"{args.seeds} seed" + ("s" if args.seeds != 1 else "")
    title = f"Ablation: {args.config or DEFAULT_CONFIG} config, {seeds} per variant"
    ablation.write_outputs(table, args.workdir, title)
    print(ablation.markdown_table(table, title), end="")


if __name__ == "__main__":
    main()
