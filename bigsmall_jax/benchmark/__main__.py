"""Speed of the model family on this machine: FLOPs, parameters, latency, throughput and the input pipeline.

    python -m bigsmall_jax.benchmark [--models bigsmall big_au ...] [--batch 16] [--dtype float32|bfloat16]
        [--repeats 10] [--quick] [--no-input-pipeline] [--data-dir DIR] [--no-tune] [--profile]
        [--memory-minutes 1 10 | --no-memory] [--output OUT.json]
    python -m bigsmall_jax.benchmark --deploy [--models ...] [--batch 16] [--repeats 10] [--output OUT.json]

For every model (default: all of `bigsmall_jax.model.NAMED_VARIANTS`, plus ``single_task_sum``, the
single-task baselines `bigsmall_jax.model.SINGLE_TASK_VARIANTS` run one after the other on the same frames)
it reports (`bigsmall_jax.benchmark.models`):

* ``flops_per_clip`` / ``flops_per_frame`` of one eval-mode forward pass (XLA cost analysis, a multiply-add
  counts 2; `bigsmall_jax.model.flops`) and ``params``;
* ``infer_frames_per_s``: the jitted forward pass on ``--batch`` clips, after warm-up, median of
  ``--repeats``; ``infer_latency_ms``: the same for a single clip;
* ``train_clips_per_s``: the full train step of the trainer (`bigsmall_jax.train.step.make_train_step` under
  ``jax.pmap`` with the state donated, as ``python -m bigsmall_jax.train`` runs it: forward with per-clip
  dropout, backward, AdamW update) on ``--batch`` clips already on the device;
* ``compile_s``: XLA compile time of the batched forward pass plus the train step;
* ``infer_peak_fraction`` / ``train_peak_fraction``: achieved GFLOP/s (FLOPs x rate; for training the XLA
  cost of the whole step, ``train_flops_per_clip``) over ``matmul_peak_gflops``, what a large jitted
  matmul in the same dtype reaches in the same run (`bigsmall_jax.benchmark.peak`). The fractions compare
  across machines.

All timings are interleaved: every round runs the peak matmul and then each model's functions once, and
each figure is the median over rounds, so that a burst of load from other processes hits every figure
alike. ``load_avg`` records the machine's load before and after.

The input pipeline (``input_pipeline``, `bigsmall_jax.benchmark.pipeline`): a small synthetic dataset is
built with `bigsmall_jax.datasets.prepare.ensure_dataset` (in a temporary folder unless ``--data-dir`` is
given), then ``stage_clips_per_s``, the largest rate each stage sustains alone (``read``: a batch gathered
from the split's decoded columns, `bigsmall_jax.datasets.columns`; ``decode``: a batch read from the
ArrayRecord files and decoded, what building the columns costs once; ``batch``: grain's loader alone;
``transfer``: host batch to the devices), the ``bottleneck`` among the stages run every epoch,
``delivered_clips_per_s`` (the whole pipeline, `bigsmall_jax.datasets.input_pipeline.make_loader` ->
`bigsmall_jax.train.parallel.prefetch_to_devices`, no step), ``bytes_per_clip`` sent to the devices,
``batches_per_s`` (the loader), ``epoch_s`` (one epoch of training as the trainer runs it: batches
prefetched to the devices, the step, its metrics fetched after the next step is dispatched), ``step_only_s``
(the same number of steps on a batch already on the device), ``loader_overhead`` = epoch_s / step_only_s - 1,
and ``synchronous_overhead`` for a loop that fetches each step's metrics before reading the next batch.

The memory of ``infer`` (``memory``, `bigsmall_jax.benchmark.memory`): the peak RSS of a fresh process that
runs `bigsmall_jax.inference.video.infer_video` on a generated 640x480 video of each of ``--memory-minutes``
(default 1 and 10 minutes; ``--quick`` skips it unless the option is given, ``--no-memory`` always), against
the size of the video's raw frames.

``--profile`` adds the first model's train step broken down by XLA op
(`bigsmall_jax.benchmark.profile.profile_train_step`).

On a CPU the benchmark compiles the forward passes (`bigsmall_jax.runtime.Forward`, as evaluation and
inference run them) and the train steps with the tuned XLA:CPU presets (`bigsmall_jax.runtime`: which ops go
to the YNNPACK library, for inference and for training) and keeps freed memory in the process;
docs/benchmark.md has what each is worth. ``--no-tune`` runs with XLA's and the allocator's defaults
instead. A GPU or TPU is used when JAX finds one (``jax.devices()[0]``).

``--deploy`` times the deployment runtime instead (`bigsmall_jax.benchmark.deploy`): BigSmall and the three
single-task models exported to ONNX and run by ONNX Runtime on the CPU, next to JAX, one-clip latency,
throughput and the size of the exported ONNX and StableHLO files.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bigsmall_jax.benchmark.deploy import format_deploy_table, run_deploy_benchmark
from bigsmall_jax.benchmark.memory import MEMORY_MINUTES
from bigsmall_jax.benchmark.models import BENCH_DTYPES
from bigsmall_jax.benchmark.report import format_table, write_result
from bigsmall_jax.benchmark.suite import run_benchmark
from bigsmall_jax.errors import UserError, cli_main, file_error
from bigsmall_jax.model import NAMED_VARIANTS


def _parser() -> argparse.ArgumentParser:
    """The command's flags (defaults: every variant, 16 clips, float32, 10 rounds, tuned, pipeline on)."""
    parser = argparse.ArgumentParser(prog="python -m bigsmall_jax.benchmark",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help=f"variants to time (default: all): {', '.join(NAMED_VARIANTS)}")
    parser.add_argument("--batch", type=int, default=16, help="clips per batch (the trainer's default: 16)")
    parser.add_argument("--dtype", default="float32", help="compute dtype: float32 or bfloat16")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (medians are reported)")
    parser.add_argument("--quick", action="store_true",
                        help="a fast smoke run: bigsmall only, 2 clips, 2 rounds, a tiny pipeline dataset")
    parser.add_argument("--no-input-pipeline", action="store_true", help="skip the input-pipeline benchmark")
    parser.add_argument("--data-dir", help="TFDS data dir for the pipeline dataset (default: a temporary one)")
    parser.add_argument("--worker-count", type=int, default=0, help="grain workers of the pipeline benchmark")
    parser.add_argument("--no-tune", action="store_true",
                        help="run with XLA's and the allocator's defaults (no tuned presets, no allocator tuning)")
    parser.add_argument("--peak-size", type=int, default=None, help="side of the peak matmul (default 2048 on CPU)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the first model's train step (jax.profiler) and list its costliest ops")
    parser.add_argument("--deploy", action="store_true",
                        help="time the exported ONNX models in ONNX Runtime next to JAX, with file sizes "
                             "(default models: bigsmall and the three single-task ones)")
    parser.add_argument("--memory-minutes", type=float, nargs="+", default=None, metavar="MIN",
                        help="video lengths for the peak memory of infer (default: 1 10; --quick: none)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory of infer")
    parser.add_argument("--output", help="write the figures as JSON here")
    return parser


def _check_output(path: str) -> None:
    """Refuses an ``--output`` that is a folder or lies in a folder that does not exist (any extension)."""
    out = Path(path)
    if out.is_dir():
        raise file_error(out, "is a directory; --output needs a file name")
    if not out.parent.is_dir():
        raise file_error(out.parent, "no such directory for --output")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, checked; ``--quick`` fills in the model, batch and rounds not given."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.dtype not in BENCH_DTYPES:
        raise UserError(f"unknown --dtype {args.dtype!r}; valid: {', '.join(BENCH_DTYPES)}")
    unknown = [m for m in args.models or () if m not in NAMED_VARIANTS]
    if unknown:
        raise UserError(f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(NAMED_VARIANTS)}")
    if args.quick:
        args.models = args.models or ["bigsmall"]
        args.batch = 2 if args.batch == parser.get_default("batch") else args.batch
        args.repeats = 2 if args.repeats == parser.get_default("repeats") else args.repeats
    if args.no_memory:
        args.memory_minutes = []
    elif args.memory_minutes is None:
        args.memory_minutes = [] if args.quick else list(MEMORY_MINUTES)
    if any(not (0 < m <= 600) for m in args.memory_minutes):
        raise UserError(f"--memory-minutes must be in (0, 600], got {args.memory_minutes}")
    if args.batch < 1 or args.repeats < 1:
        raise UserError(f"--batch and --repeats must be >= 1, got {args.batch} and {args.repeats}")
    if args.output:
        _check_output(args.output)
    return args


@cli_main
def main(argv: Sequence[str] | None = None) -> None:
    """Runs the benchmark, writes ``--output`` (JSON) and prints the table; a bad input is a one-line error."""
    args = parse_args(argv)
    if args.deploy:
        result = run_deploy_benchmark(args.models, batch_clips=args.batch, repeats=args.repeats,
                                      tuned=not args.no_tune)
        if args.output:
            write_result(args.output, result)
        print(format_deploy_table(result))
        return
    result = run_benchmark(args.models, batch_clips=args.batch, dtype=args.dtype, repeats=args.repeats,
                           tuned=not args.no_tune, peak_size=args.peak_size,
                           input_pipeline=not args.no_input_pipeline, quick=args.quick, data_dir=args.data_dir,
                           worker_count=args.worker_count, profile=args.profile,
                           memory_minutes=args.memory_minutes)
    if args.output:
        write_result(args.output, result)
    print(format_table({**result, "load_avg": result["load_avg"]["before"]}))


if __name__ == "__main__":
    main()
