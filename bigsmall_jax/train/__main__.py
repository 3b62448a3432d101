"""Train BigSmall (or a single-task baseline) data-parallel over every device JAX sees, then test it.

    python -m bigsmall_jax.train [--config configs/NAME.py | NAME] [--workdir DIR] [key=value ...]

With no arguments it trains the paper's BigSmall on the embedded synthetic dataset (built on first use
into ``$BIGSMALL_DATA_DIR`` or ``~/.cache/bigsmall_jax/data``) in ``runs/<config name>``, tests the last
epoch on held-out synthetic subjects and prints the test metrics as JSON. ``key=value`` overrides any
config value (dotted keys, Python literals: ``optim.lr=3e-4 model.big_filters=(16,16,16,32,32,32)``).

What a workdir holds::

    config.json       the resolved config (a resumed run must use the same one)
    checkpoints/      orbax: train state + input position + progress, every epoch and every N steps
    metrics.jsonl     one JSON line per step (losses, grad norm, lr, clips/s) and per validation
    loss_curves.png   the losses per task over steps
    best/             the best validation epoch's model (train.select="best" only)
    model/            the tested model (`bigsmall_jax.checkpoints.load_checkpoint(WORKDIR)` loads it)
    metrics.json      the test metrics (`bigsmall_jax.evaluation.metrics.evaluate_videos`) + run information
    test_*.png        evaluation plots (`bigsmall_jax.evaluation.plots.save_plots`)

A workdir must be new, empty, or a run's own with the same config (`bigsmall_jax.train.workdir`): one
holding other files, or a run of another config, is refused before any work.

The step (`bigsmall_jax.train.step.make_train_step`) is one `jax.pmap` over the local devices of every process
(``axis_name="batch"``): the train state is replicated, each device gets a contiguous share of whole
clips of the global batch, task losses are exact global means (per-device sums and valid-label counts
are added with ``lax.psum`` before dividing, so missing labels spread unevenly over devices do not bias
them), gradients are added over devices the same way. Dropout randomness is drawn per clip from
(seed, step, global clip index) (``train.per_clip_dropout``), so a run gives the same numbers on 1 or N
devices up to float summation order.

The loss (`bigsmall_jax.train.losses`) is ``loss.au_weight * BCE(pos_weight) + loss.bvp_weight * MSE +
loss.resp_weight * MSE`` over valid labels; ``loss.<task>_start`` (a fraction of the steps) switches a task
on later (a curriculum), ``loss.pcgrad`` combines task gradients with PCGrad. AdamW and its schedule are
in `bigsmall_jax.train.optim`; ``train.init`` draws the initial weights like Flax or like PyTorch (the paper).

Resuming: run the same command again with the same workdir. The latest checkpoint (params, AdamW
state, step, the grain iterator position within the current epoch) is restored and training continues
exactly as if it had never stopped: every random draw is a function of (seed, step, clip) and the data
order a function of (seed, epoch).

On a CPU the command line first applies `bigsmall_jax.runtime.configure_cpu_runtime` (XLA:CPU fusion
flags and a malloc setting measured to make the train step about 2x faster; GPU/TPU programs are
unaffected); ``BIGSMALL_CPU_PRESETS=0`` keeps XLA's defaults.

Multihost (``--multihost``): `jax.distributed.initialize` with ``--coordinator-address``,
``--num-processes``, ``--process-id`` (or ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
``JAX_PROCESS_ID``, or the cluster's own environment, e.g. on Cloud TPU). Every process runs the same
command; each reads its own shard of the training data and feeds its local devices; pmap spans all.

Tests and fault injection only: ``BIGSMALL_STOP_AFTER_STEPS=N`` stops the run after N steps as if it
were killed (`bigsmall_jax.train.loop.Hooks`); run the command again without it to resume.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import ml_collections

from bigsmall_jax.errors import cli_main
from bigsmall_jax.files import json_default
from bigsmall_jax.runtime import configure_cpu_runtime
from bigsmall_jax.train.config import CONFIGS_DIR, DEFAULT_CONFIG, apply_overrides, load_config, validate_config
from bigsmall_jax.train.loop import Hooks, RunResult, train_and_evaluate
from bigsmall_jax.train.parallel import initialize_distributed

log = logging.getLogger("bigsmall_jax.train")

CPU_PRESETS_ENV = "BIGSMALL_CPU_PRESETS"  # "0": the command line keeps XLA's defaults (see `run`)
STOP_AFTER_STEPS_ENV = "BIGSMALL_STOP_AFTER_STEPS"  # tests / fault injection: `Hooks.stop_after_steps`


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m bigsmall_jax.train", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None,
                   help=f"config file, or the name of one in {CONFIGS_DIR} (default: {DEFAULT_CONFIG})")
    p.add_argument("--workdir", default=None, help="run directory (default: runs/<config name>)")
    p.add_argument("--multihost", action="store_true", help="initialize jax.distributed (one process per host)")
    p.add_argument("--coordinator-address", default=None, help="host:port of process 0 (multihost)")
    p.add_argument("--num-processes", type=int, default=None, help="number of processes (multihost)")
    p.add_argument("--process-id", type=int, default=None, help="this process's index (multihost)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=3e-4")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> ml_collections.ConfigDict:
    """The config file of ``--config`` with the command line's overrides, validated."""
    config = apply_overrides(load_config(args.config), args.overrides)
    validate_config(config)
    return config


def hooks_from_env() -> Hooks:
    """`Hooks` from ``BIGSMALL_STOP_AFTER_STEPS`` (tests and fault injection only; unset: no hooks)."""
    return Hooks(stop_after_steps=int(os.environ.get(STOP_AFTER_STEPS_ENV) or -1))


def run(argv: Sequence[str] | None = None, *, cpu_presets: bool = False) -> RunResult:
    """What ``python -m bigsmall_jax.train ARGS`` does, returning the `RunResult` (no printing).

    Args:
      argv: the command line (without the program name).
      cpu_presets: first apply `bigsmall_jax.runtime.configure_cpu_runtime` (XLA:CPU flags measured to make
        the train step ~2x faster, and a malloc setting); only takes effect before JAX has started.
    """
    args = parse_args(argv)
    config = config_from_args(args)
    if cpu_presets:
        applied = configure_cpu_runtime(dtype=str(config.model.dtype), purpose="train")
        log.info("CPU presets (%s=0 turns them off): %s", CPU_PRESETS_ENV, applied)
    if args.multihost:
        initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
    name = Path(args.config).stem if args.config else DEFAULT_CONFIG
    workdir = Path(args.workdir) if args.workdir else Path("runs") / name
    return train_and_evaluate(config, workdir, hooks=hooks_from_env())


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bigsmall_jax.train``: trains, tests, prints the test metrics as JSON (process 0)."""
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
    start = time.perf_counter()
    result = run(argv, cpu_presets=os.environ.get(CPU_PRESETS_ENV, "1") != "0")
    if result.stopped_early:
        log.info("stopped at step %d; run the same command again to resume", result.final_step)
        return
    if result.metrics is None:  # not process 0
        return
    log.info("done in %.1f s: %s", time.perf_counter() - start, result.workdir / "metrics.json")
    if jax.process_index() == 0:
        table = {k: v for k, v in result.metrics.items() if k != "per_video"}
        print(json.dumps(table, indent=2, sort_keys=True, default=json_default))


if __name__ == "__main__":
    main()
