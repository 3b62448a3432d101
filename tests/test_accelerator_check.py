"""scripts/accelerator_check.sh (the prepared GPU/TPU check) without an accelerator: its plan, and the one JSON
that scripts/accelerator_report.py assembles from the steps' outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "accelerator_check.sh"


def test_plan_lists_every_step_within_eight_minutes(tmp_path):
    out = subprocess.run(["bash", str(SCRIPT), "--plan", "--out", str(tmp_path / "o")], capture_output=True,
                         text=True, timeout=60, check=True).stdout.splitlines()
    steps = [line.split(" ", 1)[0] for line in out]
    assert steps == ["install", "bench_float32", "bench_bfloat16", "train", "tests"]
    limits = [int(line.split("(", 1)[1].split("s)", 1)[0]) for line in out]
    assert sum(limits) <= 8 * 60
    text = "\n".join(out)
    assert "--dtype float32" in text and "--dtype bfloat16" in text and "bigsmall_jax.train" in text


def test_bad_argument_is_one_error_line(tmp_path):
    run = subprocess.run(["bash", str(SCRIPT), "--nope"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["error: unknown argument --nope (use --out DIR, --dry-run, --plan)"]


def test_report_gathers_statuses_and_figures(tmp_path):
    steps = tmp_path / "steps"
    steps.write_text("install 0 10.0 12.5\nbench_float32 0 12.5 80.0\nbench_bfloat16 124 80.0 190.0\n"
                     "train 1 190.0 200.0\ntests 0 200.0 260.25\n")
    (tmp_path / "bench_bfloat16.log").write_text("compiling...\n")
    (tmp_path / "train.log").write_text("error: something broke\n")
    model = {"flops_per_clip": 9.2e8, "train_flops_per_clip": 2.7e9, "infer_frames_per_s": 5e4,
             "infer_peak_fraction": 0.3, "train_clips_per_s": 1e4, "train_peak_fraction": 0.2, "train_step_ms": 25.6,
             "compile_s": 3.0}
    (tmp_path / "bench_float32.json").write_text(json.dumps({
        "device": "gpu NVIDIA H200", "batch_clips": 256, "matmul_peak_gflops": 5e5, "models": {"bigsmall": model},
        "input_pipeline": {"delivered_clips_per_s": 2e4, "stage_clips_per_s": {"read": 3e4}, "bottleneck": "read",
                           "bytes_per_clip": 65492.0}}))
    (tmp_path / "tests.xml").write_text('<testsuites><testsuite tests="10" failures="1" errors="0" skipped="2">'
                                        "</testsuite></testsuites>")
    (tmp_path / "train_metrics.jsonl").write_text(
        json.dumps({"step": 1, "train_loss": 3.0}) + "\n" + json.dumps({"step": 2, "train_loss": 2.0,
                                                                        "clips_per_s": 100.0}) + "\n")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "accelerator_report.py"), str(steps), str(tmp_path),
                          "0"], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"})
    assert run.returncode == 1  # not every step passed
    report = json.loads((tmp_path / "accelerator_check.json").read_text())
    assert json.loads(run.stdout) == report
    s = report["steps"]
    assert {k: v["status"] for k, v in s.items()} == {"install": "passed", "bench_float32": "passed",
                                                      "bench_bfloat16": "timed out", "train": "failed",
                                                      "tests": "passed"}
    assert s["tests"]["seconds"] == 60.2 and s["install"]["seconds"] == 2.5
    assert "something broke" in s["train"]["log_tail"] and "log_tail" not in s["tests"]
    assert report["total_s"] == round(2.5 + 67.5 + 110.0 + 10.0 + 60.2, 1) and not report["all_passed"]
    b = report["benchmark"]
    assert b["bfloat16"] is None
    assert b["float32"]["models"]["bigsmall"] == model and b["float32"]["input_pipeline"]["bottleneck"] == "read"
    assert report["tests"] == {"tests": 10, "failures": 1, "errors": 0, "skipped": 2, "passed": 7}
    assert report["train"]["steps"] == 2 and report["train"]["last_loss"] == 2.0
    assert report["train"]["clips_per_s_median"] == 100.0
    assert report["device"].startswith("cpu")
