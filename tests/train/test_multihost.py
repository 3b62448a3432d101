"""Multihost training: two processes on this machine (CPU collectives over 127.0.0.1) train one model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bigsmall_jax.checkpoints import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]

# Each process runs the training command's code path and saves the parameters it ends with.
_DRIVER = textwrap.dedent("""
    import sys, jax, numpy as np
    from bigsmall_jax.train.__main__ import run
    out = sys.argv[1]
    result = run(sys.argv[2:])
    leaves = jax.tree_util.tree_leaves(result.params)
    np.savez(out, *[np.asarray(x) for x in leaves])
    print("PROCESS", jax.process_index(), "OF", jax.process_count(), "DEVICES", jax.device_count(),
          "STEPS", result.final_step, flush=True)
""")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    return env


def test_two_processes_end_with_identical_parameters(tiny_synthetic_dataset, tmp_path):
    portpicker = pytest.importorskip("portpicker")
    data_dir, builder = tiny_synthetic_dataset
    settings = {**builder.builder_config.synthetic, "tail": builder.builder_config.tail}
    port = portpicker.pick_unused_port()
    workdir = tmp_path / "run"
    args = ["--workdir", str(workdir), "--multihost", "--coordinator-address", f"127.0.0.1:{port}",
            "--num-processes", "2", f"dataset.data_dir={str(data_dir)!r}", f"dataset.settings={settings!r}",
            "model.big_filters=(4,4,4,8,8,8)", "model.small_filters=(4,4,4,8)", "model.dense_units=8",
            "train.init='flax'", "train.batch_clips=4", "train.num_epochs=2", "train.steps_per_epoch=4",
            "train.checkpoint_every_steps=3",
            "train.eval_batch_clips=8", "dataset.val_split='validation'", "train.select='best'"]
    procs = [subprocess.Popen([sys.executable, "-c", _DRIVER, str(tmp_path / f"params{i}.npz"), *args,
                               "--process-id", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env()) for i in range(2)]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=420))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-4000:]
    assert "PROCESS 0 OF 2 DEVICES 2 STEPS 8" in outputs[0][0]
    assert "PROCESS 1 OF 2 DEVICES 2 STEPS 8" in outputs[1][0]

    a, b = np.load(tmp_path / "params0.npz"), np.load(tmp_path / "params1.npz")
    assert a.files == b.files and len(a.files) > 10
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])
        assert np.all(np.isfinite(a[k]))

    # Process 0 wrote the run's outputs, once. The tested model is the best validation epoch's, in best/ too.
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["run"]["processes"] == 2 and metrics["run"]["devices"] == 2
    val = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if "val_loss" in line]
    assert [v["epoch"] for v in val] == [0, 1] and all(np.isfinite(v["val_loss"]) for v in val)
    best_epoch = int(np.argmin([v["val_loss"] for v in val]))
    assert metrics["run"]["tested"] == {"select": "best", "epoch": best_epoch, "step": 4 * (best_epoch + 1)}
    import jax

    exported = jax.tree_util.tree_leaves(load_checkpoint(workdir)[1]["params"])
    best = jax.tree_util.tree_leaves(load_checkpoint(workdir / "best")[1]["params"])
    for x, y in zip(exported, best, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    if best_epoch == 1:  # the last epoch is the best: the exported model is the final parameters
        for i, x in enumerate(exported):
            np.testing.assert_array_equal(np.asarray(x), a[f"arr_{i}"])
