"""The one JSON of scripts/accelerator_check.sh: device, versions, and each step's status, seconds and figures.

    python scripts/accelerator_report.py STEPS_FILE OUT_DIR DRY(0|1)

STEPS_FILE has one line per step: ``name exit_status start_s end_s``; OUT_DIR holds the steps' logs and
outputs (bench_<dtype>.json, train_metrics.json / .jsonl, tests.xml). Writes OUT_DIR/accelerator_check.json
and prints it.
"""

from __future__ import annotations

import importlib.metadata
import json
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from bigsmall_jax.files import to_json, write_json_atomic

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "tensorflow-datasets", "array-record",
            "ml-collections", "numpy", "torch", "opencv-python", "opencv-python-headless")
TIMEOUT_STATUSES = (124, 137)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def steps(steps_file: Path, out: Path) -> dict[str, dict[str, Any]]:
    """{step: {"status": passed / failed / timed out, "exit", "seconds", "log_tail" (when not passed)}}."""
    result = {}
    for line in steps_file.read_text().splitlines():
        name, rc, start, end = line.split()
        rc = int(rc)
        entry = {"status": "passed" if rc == 0 else "timed out" if rc in TIMEOUT_STATUSES else "failed",
                 "exit": rc, "seconds": round(float(end) - float(start), 1)}
        if rc:
            log = out / f"{name}.log"
            entry["log_tail"] = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
        result[name] = entry
    return result


def benchmark(out: Path, dtype: str) -> dict[str, Any] | None:
    """The headline figures of bench_<dtype>.json (the whole file stays beside it)."""
    bench = _read_json(out / f"bench_{dtype}.json")
    if bench is None:
        return None
    keys = ("flops_per_clip", "train_flops_per_clip", "infer_frames_per_s", "infer_peak_fraction",
            "train_clips_per_s", "train_peak_fraction", "train_step_ms", "compile_s")
    figures = {"device": bench.get("device"), "batch_clips": bench.get("batch_clips"),
               "matmul_peak_gflops": bench.get("matmul_peak_gflops"),
               "models": {name: {k: m.get(k) for k in keys} for name, m in bench.get("models", {}).items()}}
    pipe = bench.get("input_pipeline")
    if pipe:
        figures["input_pipeline"] = {k: pipe.get(k) for k in (
            "delivered_clips_per_s", "stage_clips_per_s", "bottleneck", "bytes_per_clip", "loader_overhead",
            "epoch_s", "step_only_s")}
    return figures


def training(out: Path) -> dict[str, Any] | None:
    """Steps, median clips/s, first and last loss of the training run, and its test metrics."""
    records = []
    log = out / "train_metrics.jsonl"
    if log.is_file():
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    train = [r for r in records if "train_loss" in r]
    if not train:
        return None
    rates = [r["clips_per_s"] for r in train if "clips_per_s" in r]
    metrics = _read_json(out / "train_metrics.json") or {}
    return {"steps": train[-1]["step"], "clips_per_s_median": statistics.median(rates) if rates else None,
            "first_loss": train[0]["train_loss"], "last_loss": train[-1]["train_loss"],
            "test": {k: metrics.get(k) for k in ("hr_mae", "rr_mae", "au_f1_mean")}}


def tests(out: Path) -> dict[str, int] | None:
    """Counts of the pytest run (its JUnit XML)."""
    try:
        root = ET.parse(out / "tests.xml").getroot()
    except (OSError, ET.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def report(steps_file: Path, out: Path, dry: bool) -> dict[str, Any]:
    """The whole report (see the module docstring)."""
    import jax  # noqa: PLC0415 (after the arguments are checked)

    done = steps(steps_file, out)
    device = jax.devices()[0]
    return {"dry_run": dry, "device": f"{device.platform} {device.device_kind}", "device_count": jax.device_count(),
            "versions": versions(), "all_passed": all(s["status"] == "passed" for s in done.values()),
            "total_s": round(sum(s["seconds"] for s in done.values()), 1), "steps": done,
            "benchmark": {dtype: benchmark(out, dtype) for dtype in ("float32", "bfloat16")},
            "train": training(out), "tests": tests(out)}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("error: usage: accelerator_report.py STEPS_FILE OUT_DIR DRY(0|1)", file=sys.stderr)
        return 2
    result = report(Path(argv[0]), Path(argv[1]), argv[2] == "1")
    write_json_atomic(Path(argv[1]) / "accelerator_check.json", result, sort_keys=False)
    print(to_json(result, sort_keys=False))
    return 0 if result["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
