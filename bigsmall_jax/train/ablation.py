"""The paper's ablation: several named variants, each trained with several seeds, as one table.

Every run is an ordinary training run (`bigsmall_jax.train.run` with its own ``--workdir`` and the overrides
that make it the variant and the seed, `plan_runs`), so it resumes like any run and can be run on another
machine (`RunSpec.command`). `summarize` then reads each run's ``metrics.json`` and each variant's cost
(`variant_cost`: FLOPs and parameters from XLA's cost analysis, inference frames/s measured) into the table:
mean ± standard deviation over seeds. ``python -m bigsmall_jax.ablate`` is the command line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bigsmall_jax.benchmark.peak import _cpu_model
from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.errors import UserError, file_error
from bigsmall_jax.figures import new_figure, save_png
from bigsmall_jax.files import write_json_atomic, write_text_atomic
from bigsmall_jax.model import ModelConfig, build_model, init_variables, named_config, variant_name
from bigsmall_jax.model.flops import forward_cost
from bigsmall_jax.runtime import Forward
from bigsmall_jax.train.__main__ import config_from_args, parse_args
from bigsmall_jax.train.config import (
    DEFAULT_CONFIG,
    apply_overrides,
    config_to_json,
    load_config,
    validate_config,
)
from bigsmall_jax.train.workdir import check_workdir

log = logging.getLogger(__name__)

RATE_METRICS = ("mae", "rmse", "pearson")
# The table's accuracy columns: (metrics.json key, column title).
ACCURACY_COLUMNS = (("au_f1_mean", "AU F1"),
                    *((f"{task}_{m}", f"{task.upper()} {m.upper() if m != 'pearson' else 'r'}")
                      for task in ("hr", "rr") for m in RATE_METRICS))


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run of the ablation.

    Attributes:
      variant: the `NAMED_VARIANTS` name.
      seed: the config's ``seed``.
      workdir: the run's directory (``DIR/<variant>/seed<k>``).
      argv: the arguments of ``python -m bigsmall_jax.train`` that make the run.
    """

    variant: str
    seed: int
    workdir: Path
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        """The shell command that makes this run on any machine."""
        return shlex.join(["python", "-m", "bigsmall_jax.train", *self.argv])

    @property
    def finished(self) -> bool:
        """Whether the run has been tested (its ``metrics.json``, written last and atomically, exists)."""
        return (self.workdir / "metrics.json").is_file()


def _literal(value: Any) -> str:
    """`value` as the Python literal an override takes (lists as tuples, as configs hold them; strings in
    double quotes, which read better in a shell command)."""
    if isinstance(value, str):
        return f'"{value}"' if '"' not in value and "\\" not in value else repr(value)
    return repr(tuple(value)) if isinstance(value, list | tuple) else repr(value)


def variant_overrides(variant: str, base) -> tuple[list[str], list[str]]:
    """The overrides that turn config `base` into a run of `variant` (a `NAMED_VARIANTS` name), as
    (overrides that go before the user's: the model fields and the init; loss overrides that go after).

    The model section becomes the variant's fields (keeping `base`'s ``n_segment`` and ``dtype``); only the
    fields that differ from `base` are written. Every variant starts from Flax's init: the published warm
    start (``train.init = "bp4d-fold1"``) fits only BigSmall's own layers, and a fair comparison starts all
    variants alike (a user's ``train.init`` comes after and wins). A model without an AU head gets no AU
    pos_weight, and a single-task model's task loss starts at step 0 (a curriculum that delays a task only
    makes sense beside another task): these loss overrides go after the user's, which they correct for this
    variant.
    """
    model = base.model.to_dict()
    fields = named_config(variant, n_segment=model["n_segment"], dtype=model["dtype"]).to_dict()
    model_out = [f"model.{k}={_literal(v)}" for k, v in fields.items() if _literal(model.get(k)) != _literal(v)]
    if base.train.init == "bp4d-fold1":
        model_out.append("train.init='flax'")
    mc = ModelConfig(**fields)
    loss_out = []
    if not mc.n_au and len(base.loss.au_pos_weight):
        loss_out.append("loss.au_pos_weight=()")
    if len(mc.heads) == 1:
        task = mc.heads[0][0]
        if base.loss[f"{task}_start"] != 0:
            loss_out.append(f"loss.{task}_start=0.0")
    return model_out, loss_out


def plan_runs(variants: Sequence[str], seeds: int, config_name: str | None, overrides: Sequence[str],
              workdir: str | Path) -> list[RunSpec]:
    """Every (variant, seed) run, its train arguments checked (a bad variant, key or combination fails here,
    before anything trains).

    Args:
      variants: `NAMED_VARIANTS` names or the authors' class names.
      seeds: runs per variant, with ``seed`` 0 .. seeds-1.
      config_name: the training config (name or file; None: the default).
      overrides: ``key=value`` for every run (after the variant's own).
      workdir: the ablation directory; run k of variant V trains in ``workdir/V/seed<k>``.
    """
    if seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    names = [variant_name(v) for v in variants]
    if not names or len(set(names)) != len(names):
        raise UserError(f"--variants must name at least one variant, each once; got {', '.join(variants)}")
    config_arg = config_name or DEFAULT_CONFIG
    base = apply_overrides(load_config(config_arg), overrides)  # a bad key fails once, here
    specs = []
    for name in names:
        model_own, loss_own = variant_overrides(name, base)
        for seed in range(seeds):
            run_dir = Path(workdir) / name / f"seed{seed}"
            argv = ("--config", config_arg, "--workdir", str(run_dir), *model_own, *overrides, *loss_own,
                    f"seed={seed}")
            specs.append(RunSpec(name, seed, run_dir, argv))
            try:
                validate_config(run_config(specs[-1]))
            except UserError as e:
                raise UserError(f"variant {name}: {e}") from None
    return specs


def run_config(spec: RunSpec):
    """The training config `spec` trains with (what ``python -m bigsmall_jax.train ARGV`` resolves)."""
    return config_from_args(parse_args(list(spec.argv)))


def check_finished_run(spec: RunSpec) -> None:
    """Refuses a finished run whose saved config is not the planned one (another ablation's run)."""
    check_workdir(Path(spec.workdir), config_to_json(run_config(spec)))


def machine() -> str:
    """The accelerator JAX computes on, or the CPU's model and core count."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"{_cpu_model()}, {os.cpu_count()} cores"
    return f"{jax.device_count()} x {device.device_kind}"


def inference_rate(config: ModelConfig, batch_clips: int, repeats: int) -> float:
    """Eval-mode frames per second of `config`'s model (`bigsmall_jax.runtime.Forward`, random weights and
    inputs: the rate does not depend on the values), the median over `repeats` timed calls."""
    model = build_model(config)
    variables = init_variables(model, jax.random.key(0))
    n = batch_clips * config.n_segment
    rng = np.random.default_rng(0)
    big = jax.device_put(rng.standard_normal((n, config.big_size, config.big_size, 3), np.float32))
    small = jax.device_put(rng.standard_normal((n, config.small_size, config.small_size, 3), np.float32))
    forward = Forward(model).compile(variables, big, small)
    jax.block_until_ready(forward(variables, big, small))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(forward(variables, big, small))
        times.append(time.perf_counter() - start)
    return n / float(np.median(times))


def variant_cost(config: ModelConfig, cache: Path, batch_clips: int, repeats: int) -> dict[str, Any]:
    """GFLOPs per clip, parameters and inference frames/s of a model, kept in `cache` (a JSON file) and
    reused while the model, the timing settings and the machine are the same."""
    key = {"model": config.to_dict(), "batch_clips": batch_clips, "repeats": repeats, "machine": machine()}
    if cache.is_file():
        try:
            saved = json.loads(cache.read_text())
        except json.JSONDecodeError:
            saved = {}
        if all(saved.get(k) == v for k, v in key.items()):
            return saved
    cost = forward_cost(build_model(config))
    out = {**key, "gflops_per_clip": cost["flops_per_clip"] / 1e9, "params": cost["params"],
           "infer_frames_per_s": inference_rate(config, batch_clips, repeats)}
    write_json_atomic(cache, out)
    return out


def _stats(values: Sequence[float]) -> dict[str, Any]:
    """Mean and standard deviation (n - 1 in the denominator; 0 for one value) of the finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return {"mean": None, "std": None, "n": 0, "values": list(values)}
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return {"mean": float(np.mean(finite)), "std": std, "n": len(finite), "values": list(values)}


def read_metrics(spec: RunSpec) -> dict[str, Any]:
    """The test metrics of a finished run."""
    path = spec.workdir / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise file_error(path, f"cannot read the run's test metrics: {e}") from None


def summarize(specs: Sequence[RunSpec], costs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The ablation table as a dict: per variant its cost and, for each accuracy metric (and the F1 of each
    AU, ``au_f1/<AU>``), mean ± std over its seeds."""
    rows = {}
    for name in dict.fromkeys(s.variant for s in specs):
        runs = [read_metrics(s) for s in specs if s.variant == name]
        metrics = {key: _stats([r.get(key) for r in runs]) for key, _ in ACCURACY_COLUMNS}
        for au in AU_NAMES:
            metrics[f"au_f1/{au}"] = _stats([(r.get("au_f1") or {}).get(au) for r in runs])
        cost = costs[name]
        rows[name] = {"gflops_per_clip": cost["gflops_per_clip"], "params": cost["params"],
                      "infer_frames_per_s": cost["infer_frames_per_s"], "seeds": len(runs),
                      "metrics": {k: v for k, v in metrics.items() if v["n"]}}
    return {"variants": rows, "machine": machine(), "software": describe_platform(), "au_names": list(AU_NAMES)}


def _cell(stat: Mapping[str, Any] | None, digits: int) -> str:
    if not stat:
        return "—"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown_table(table: Mapping[str, Any], title: str) -> str:
    """The table as Markdown: cost and accuracy per variant, then the F1 of every AU."""
    rows = table["variants"]
    head = ["variant", "GFLOPs/clip", "params", "frames/s", *(t for _, t in ACCURACY_COLUMNS)]
    lines = [f"# {title}", "", f"Mean ± standard deviation over seeds; frames/s measured on {table['machine']}.",
             "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, row in rows.items():
        m = row["metrics"]
        seeds = f"{row['seeds']} seed" + ("s" if row["seeds"] != 1 else "")
        cells = [f"{name} ({seeds})", f"{row['gflops_per_clip']:.3f}", f"{row['params']:,}",
                 f"{row['infer_frames_per_s']:.0f}",
                 *(_cell(m.get(key), 3 if key.startswith("au") or key.endswith("pearson") else 2)
                   for key, _ in ACCURACY_COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    with_au = {n: r for n, r in rows.items() if "au_f1/" + table["au_names"][0] in r["metrics"]}
    if with_au:
        lines += ["", "AU F1 per action unit:", "", "| variant | " + " | ".join(table["au_names"]) + " |",
                  "| --- |" + " --- |" * len(table["au_names"])]
        for name, row in with_au.items():
            cells = [_cell(row["metrics"].get(f"au_f1/{au}"), 2) for au in table["au_names"]]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_cost(table: Mapping[str, Any], path_png: str | Path, title: str) -> Path:
    """One panel per task (AU F1, HR MAE, RR MAE) of accuracy against GFLOPs per clip, error bars ±1 std."""
    panels = (("au_f1_mean", "mean AU F1 (higher is better)"), ("hr_mae", "HR MAE, bpm (lower is better)"),
              ("rr_mae", "RR MAE, breaths/min (lower is better)"))
    fig = new_figure(13, 4.2)
    axes = fig.subplots(1, len(panels))
    colors = {name: f"C{i % 10}" for i, name in enumerate(table["variants"])}  # one colour per variant
    for ax, (key, label) in zip(axes, panels, strict=True):
        for name, row in table["variants"].items():
            stat = row["metrics"].get(key)
            if not stat:
                continue
            x = row["gflops_per_clip"]
            ax.errorbar([x], [stat["mean"]], yerr=[stat["std"]], fmt="o", capsize=3, color=colors[name])
            ax.annotate(name, (x, stat["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("GFLOPs per clip (log)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return save_png(fig, path_png)


def write_outputs(table: Mapping[str, Any], out_dir: Path, title: str) -> list[Path]:
    """``ablation.md``, ``ablation.json`` and ``ablation.png`` in `out_dir`, each written atomically."""
    return [write_text_atomic(out_dir / "ablation.md", markdown_table(table, title)),
            write_json_atomic(out_dir / "ablation.json", table, sort_keys=False),
            plot_accuracy_vs_cost(table, out_dir / "ablation.png", title)]


def describe_platform() -> str:
    """Python and JAX versions, for the JSON's record."""
    return f"Python {platform.python_version()}, jax {jax.__version__}"
