"""The benchmark command (a tiny run: every JSON field present and consistent, bad input refused) and its
pieces: interleaved timing, peak fractions, the synthetic batch, the trainer's loop in the pipeline benchmark.

No timing assertions: timings belong to ``python -m bigsmall_jax.benchmark``, not to the test suite.
"""

import json
import math

import jax
import numpy as np
import pytest

from bigsmall_jax.benchmark import pipeline
from bigsmall_jax.benchmark.__main__ import main
from bigsmall_jax.benchmark.models import peak_fractions, synthetic_batch
from bigsmall_jax.benchmark.peak import time_interleaved
from bigsmall_jax.benchmark.report import format_table
from bigsmall_jax.model import SINGLE_TASK_VARIANTS, named_config

MODEL_FIELDS = ("flops_per_clip", "flops_per_frame", "train_flops_per_clip", "params", "n_segment", "batch_clips",
                "infer_frames_per_s", "infer_latency_ms", "train_clips_per_s", "train_step_ms", "compile_s",
                "compile_infer_s", "compile_train_s", "infer_gflops", "infer_peak_fraction", "latency_gflops",
                "latency_peak_fraction", "train_gflops", "train_peak_fraction")
PIPELINE_FIELDS = ("delivered_clips_per_s", "bytes_per_clip", "batches_per_s", "epoch_s", "step_only_s",
                   "loader_overhead", "steps_per_epoch",
                   "train_records", "batch_clips", "epoch_synchronous_s", "synchronous_overhead")


# ---------------------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One tiny benchmark run: BigSmall and the three single-task baselines, 1 clip, 1 round, profiled."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    data_dir = tmp_path_factory.mktemp("bench_data")
    main(["--quick", "--models", "bigsmall", "big_au", "small_bvp", "small_resp", "--batch", "1", "--repeats",
             "1", "--no-tune", "--profile", "--data-dir", str(data_dir), "--output", str(out)])
    return json.loads(out.read_text())


def test_quick_run_has_every_field(quick_run, capsys):
    r = quick_run
    assert r["dtype"] == "float32" and r["batch_clips"] == 1
    assert r["device"].startswith(jax.devices()[0].platform)
    assert r["matmul_peak_gflops"] > 0 and r["matmul_peak_gflops_best"] >= r["matmul_peak_gflops"] * (1 - 1e-9)
    assert set(r["models"]) == {"bigsmall", "big_au", "small_bvp", "small_resp", "single_task_sum"}
    for name, m in r["models"].items():
        for field in MODEL_FIELDS:
            assert math.isfinite(m[field]) and m[field] > 0, (name, field, m.get(field))
    pipe = r["input_pipeline"]
    for field in PIPELINE_FIELDS:
        assert math.isfinite(pipe[field]), field
    assert pipe["steps_per_epoch"] == pipe["train_records"] // pipe["batch_clips"] >= 1
    assert pipe["epoch_s"] > 0 and pipe["step_only_s"] > 0
    assert pipe["loader_overhead"] == pytest.approx(pipe["epoch_s"] / pipe["step_only_s"] - 1)
    rates = pipe["stage_clips_per_s"]
    assert set(rates) == {"read", "decode", "batch", "transfer"} and all(v > 0 for v in rates.values())
    assert pipe["bottleneck"] == min(("read", "batch", "transfer"), key=rates.get)
    by_batch = pipe["delivered_clips_per_s_by_batch"]  # the quick dataset is too small for accelerator batches
    assert by_batch == {str(pipe["batch_clips"]): pipe["delivered_clips_per_s"]}
    # BigSmall reads one Big frame per clip: one uint8 frame, 3 Small frames and the labels go to the device.
    assert pipe["big_first_only"]
    frame_u8, small = 144 * 144 * 3, 3 * 9 * 9 * 3 * 4
    assert frame_u8 + small < pipe["bytes_per_clip"] < frame_u8 + small + 1000 < 70_000
    assert set(r["load_avg"]) == {"before", "after"}


def test_quick_run_figures_are_consistent(quick_run):
    m = quick_run["models"]
    peak = quick_run["matmul_peak_gflops"]
    big = m["bigsmall"]
    assert big["params"] == 2_142_478  # the paper's model (tests/model/test_bigsmall.py counts it analytically)
    assert big["n_segment"] == 3
    assert big["flops_per_frame"] == pytest.approx(big["flops_per_clip"] / 3)
    # A train step costs about three forward passes (forward, input and weight gradients).
    assert 2.0 < big["train_flops_per_clip"] / big["flops_per_clip"] < 4.0
    for f in m.values():
        assert f["infer_peak_fraction"] == pytest.approx(f["flops_per_frame"] * f["infer_frames_per_s"] / 1e9 / peak)
        assert f["train_peak_fraction"] == pytest.approx(f["train_flops_per_clip"] * f["train_clips_per_s"] / 1e9
                                                         / peak)
        assert f["latency_peak_fraction"] == pytest.approx(f["flops_per_clip"] / (f["infer_latency_ms"] / 1e3) / 1e9
                                                           / peak)
    # The three baselines run one after the other: costs add, times per frame add.
    parts = [m[k] for k in SINGLE_TASK_VARIANTS]
    s = m["single_task_sum"]
    for key in ("flops_per_clip", "params", "infer_latency_ms", "train_step_ms"):
        assert s[key] == pytest.approx(sum(p[key] for p in parts))
    assert 1 / s["infer_frames_per_s"] == pytest.approx(sum(1 / p["infer_frames_per_s"] for p in parts))
    assert 1 / s["train_clips_per_s"] == pytest.approx(sum(1 / p["train_clips_per_s"] for p in parts))
    # BigSmall costs far less than the three baselines together (the paper's efficiency claim).
    assert big["flops_per_clip"] < 0.5 * s["flops_per_clip"]


def test_quick_run_profile(quick_run):
    prof = quick_run["profile"]
    assert prof["model"] == "bigsmall"
    rows = prof["ops"]
    assert [r["op"] for r in rows[-2:]] == ["(all ops)", "(step)"]
    ops = rows[:-2]
    assert ops and all(r["ms"] >= 0 and r["what"] for r in ops)
    assert [r["ms"] for r in ops] == sorted((r["ms"] for r in ops), reverse=True)
    assert sum(r["share"] for r in ops) <= 1 + 1e-9
    assert any("convolution" in r["what"] for r in ops)


def test_table_lists_every_model(quick_run):
    text = format_table({**quick_run, "load_avg": quick_run["load_avg"]["before"]})
    for name in quick_run["models"]:
        assert name in text
    assert "loader overhead" in text


@pytest.mark.parametrize("argv,message", [
    (["--models", "bigsmall", "nope"], "unknown model(s) nope"),
    (["--dtype", "float64"], "unknown --dtype 'float64'"),
    (["--batch", "0"], "--batch and --repeats must be >= 1"),
    (["--output", "/no/such/dir/out.json"], "no such directory for --output"),
])
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


# ---------------------------------------------------------------------------------------- the pieces


def test_time_interleaved_runs_round_robin():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    times = time_interleaved(fns, repeats=4, warmup=2, progress=False)
    assert calls == ["a", "b", "c"] * 6
    assert {k: v.shape for k, v in times.items()} == {"a": (4,), "b": (4,), "c": (4,)}
    assert all((v >= 0).all() for v in times.values())


def test_peak_fractions_closed_form():
    fig = {"flops_per_frame": 2e8, "flops_per_clip": 6e8, "infer_frames_per_s": 500.0, "infer_latency_ms": 10.0,
           "train_flops_per_clip": 1.8e9, "train_clips_per_s": 20.0}
    got = peak_fractions(fig, peak_gflops=200.0)
    assert got["infer_gflops"] == pytest.approx(100.0) and got["infer_peak_fraction"] == pytest.approx(0.5)
    assert got["latency_gflops"] == pytest.approx(60.0) and got["latency_peak_fraction"] == pytest.approx(0.3)
    assert got["train_gflops"] == pytest.approx(36.0) and got["train_peak_fraction"] == pytest.approx(0.18)


def test_synthetic_batch_layout():
    config = named_config("bigsmall")
    b = synthetic_batch(config, n_clips=2)
    assert b["big"].shape == (6, 144, 144, 3) and b["big"].dtype == np.uint8 and b["small"].shape == (6, 9, 9, 3)
    assert b["big_mean"].shape == b["big_std"].shape == (6,)
    # The stated statistics are those of the frames (uniform uint8).
    assert float(b["big"].mean()) == pytest.approx(float(b["big_mean"][0]), abs=0.5)
    assert float(b["big"].std()) == pytest.approx(float(b["big_std"][0]), abs=0.5)
    assert b["au"].shape == b["au_mask"].shape == (6, 12)
    assert set(np.unique(b["au"])) <= {0.0, 1.0}
    for key in ("bvp", "resp", "bvp_mask", "resp_mask", "frame_mask"):
        assert b[key].shape == (6,)
    assert all(v.dtype == np.float32 for k, v in b.items() if k != "big")
    assert synthetic_batch(config, n_clips=2, big_first_only=True)["big"].shape == (2, 144, 144, 3)


def test_epoch_with_loader_fetches_each_step_after_the_next_is_dispatched(monkeypatch):
    """The trainer's loop (`OneBehind`): step s's metrics are fetched only once step s+1 is dispatched, the
    last one at the end; every batch is prefetched and dispatched once, in order."""
    events = []

    class FakeTrain:
        model = type("M", (), {"config": type("C", (), {"n_segment": 3})()})()
        n_devices = 1

        def dispatch(self, batch):
            events.append(("dispatch", batch["i"]))
            return {"loss": batch["i"]}

    monkeypatch.setattr(pipeline, "prefetch_to_devices", lambda batches, t, devices, pack: ((b, None) for b in batches))
    monkeypatch.setattr(pipeline.jax, "device_get", lambda m: events.append(("fetch", m["loss"])))
    seconds = pipeline.epoch_with_loader(FakeTrain(), [{"i": i} for i in range(3)])
    assert seconds >= 0
    assert events == [("dispatch", 0), ("dispatch", 1), ("fetch", 0), ("dispatch", 2), ("fetch", 1), ("fetch", 2)]
