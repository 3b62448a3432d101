"""Windows and live measurement: a video fed frame by frame to `Monitor` gives what `infer` gives on the same
windows; the CLIs (infer's defaults and windows, live on a file) and their bad input."""

from __future__ import annotations

import json

import imageio
import numpy as np
import pytest
from cli_checks import expect_one_error_line
from face_drawing import draw_face

from bigsmall_jax.checkpoints import load_checkpoint
from bigsmall_jax.errors import UserError
from bigsmall_jax.evaluation import quality
from bigsmall_jax.infer import main as infer_main
from bigsmall_jax.inference.detectors import BoxSmoother
from bigsmall_jax.inference.live import Monitor
from bigsmall_jax.inference.video import infer_frames
from bigsmall_jax.inference.windows import window_bounds
from bigsmall_jax.live import main as live_main

FPS = 25.0
WINDOW_S, STRIDE_S = 2.4, 0.8  # 60 frames every 20
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")


def _face_video(t: int, seed: int = 0) -> np.ndarray:
    """A still cartoon face (Haar finds it) whose skin pulses at 1.4 Hz and brightens at 0.3 Hz, with noise."""
    rng = np.random.default_rng(seed)
    face = draw_face(120, 160, 80, 60, 32).astype(np.float64)
    k = np.arange(t)[:, None, None, None]
    wave = 2.0 * np.sin(2 * np.pi * 1.4 * k / FPS) * np.array([0.3, 1.0, 0.3]) + 2.0 * np.sin(2 * np.pi * 0.3 * k / FPS)
    return np.clip(face[None] + wave + rng.normal(0, 1.0, (t, 120, 160, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint("bp4d-fold1")


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("live") / "face.mp4"
    with imageio.get_writer(path, format="FFMPEG", fps=FPS, codec="libx264rgb", pixelformat="rgb24",
                            macro_block_size=1, output_params=["-qp", "0"], ffmpeg_log_level="error") as w:
        for f in _face_video(100):
            w.append_data(f)
    return path


def test_monitor_equals_infer_on_the_same_windows(shipped, detector="haar"):
    model, variables = shipped
    frames = _face_video(100)
    monitor = Monitor(model, variables, window_s=WINDOW_S, stride_s=STRIDE_S, fps=FPS, detector=detector,
                      redetect_s=None)
    estimates = [e for i, f in enumerate(frames) if (e := monitor.update(f, i / FPS)) is not None]
    bounds = window_bounds(len(frames), FPS, WINDOW_S, STRIDE_S)
    assert [round(e.window.start_s * FPS) for e in estimates] == [a for a, _ in bounds] == [0, 20, 40]
    for est, (a, b) in zip(estimates, bounds, strict=True):
        ref = infer_frames(model, variables, frames[a:b], FPS, "first" if detector else None, progress=False)
        if detector:
            assert est.box == tuple(int(v) for v in ref.boxes[0])
        for kind, head, got in (("hr", "bvp", est.window.hr), ("rr", "resp", est.window.rr)):
            want = quality.rate_estimate(ref.outputs[head], FPS, kind)
            assert got.rate == want.rate == (ref.hr_bpm if kind == "hr" else ref.rr_bpm)
            assert got.snr_db == pytest.approx(want.snr_db, abs=1e-3)
            assert got.low_quality == want.low_quality
        np.testing.assert_allclose(est.window.au_probs, ref.au_probs[-1], atol=1e-5)
        assert est.latency_s > 0 and est.t == pytest.approx((b - 1) / FPS)


def test_monitor_learns_the_frame_rate_and_waits_for_a_face(shipped):
    model, variables = shipped
    monitor = Monitor(model, variables, window_s=1.0, stride_s=1.0, detector="haar")
    blank = np.full((120, 160, 3), 90, np.uint8)
    assert all(monitor.update(blank, i / 30) is None for i in range(5))  # no face: nothing buffered
    assert monitor.n_frames == 0 and monitor.tracker.misses == 5
    face = _face_video(40)
    out = [monitor.update(f, (5 + i) / 30) for i, f in enumerate(face)]
    assert monitor.fps == pytest.approx(30.0)
    assert sum(o is not None for o in out) == 1  # 40 frames: one 30-frame window, next one at 60
    with pytest.raises(UserError, match="uint8"):
        monitor.update(face[0].astype(np.float32), 10.0)


def test_box_smoother_ignores_jitter_and_follows_moves():
    s = BoxSmoother(alpha=0.5, deadband=0.1)
    first = s.update((100, 100, 50, 50))
    rng = np.random.default_rng(0)
    assert all(s.update(tuple(int(v) for v in (100, 100, 50, 50) + rng.integers(-2, 3, 4))) == first
               for _ in range(20))
    boxes = [s.update((160, 100, 50, 50)) for _ in range(8)]
    assert boxes[0] != first and abs(boxes[-1][0] - 160) <= 5


def test_window_longer_than_the_video_is_one_sentence():
    with pytest.raises(UserError, match=r"clip.mp4: is 2.00 s long \(50 frames\), shorter than one 10 s window"):
        window_bounds(50, FPS, 10.0, 1.0, "clip.mp4")


def test_infer_without_checkpoint_uses_the_shipped_model(tmp_path, capsys, video_file):
    out, png = tmp_path / "res.json", tmp_path / "res.png"
    infer_main([str(video_file), "--output", str(out), "--plot", str(png), "--window-s", str(WINDOW_S),
                "--stride-s", str(STRIDE_S)])
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["checkpoint"] == "bp4d-fold1"
    assert "no --checkpoint: using the shipped model 'bp4d-fold1'" in captured.err
    doc = json.loads(out.read_text())
    assert {"hr_snr_db", "hr_low_quality", "rr_snr_db", "rr_low_quality", "hrv", "windows"} <= set(doc)
    assert "0.40 s apart" in doc["hrv"]["detector"]
    assert [w["start_s"] for w in doc["windows"]["estimates"]] == pytest.approx([0.0, 0.8, 1.6])
    assert all("active_aus" in w and "hr_bpm" in w for w in doc["windows"]["estimates"])
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_infer_lists_models_and_refuses_a_too_long_window(tmp_path, capsys, video_file):
    infer_main(["--list-models"])
    assert capsys.readouterr().out.startswith("bp4d-fold1 (default):")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    expect_one_error_line(capsys, infer_main, [video_file, "--output", out_dir / "r.json", "--window-s", "30"],
                          out_dir, "face.mp4", "shorter than one 30 s window")
    expect_one_error_line(capsys, infer_main, [video_file, "--output", out_dir / "r.json", "--stride-s", "1"],
                          out_dir, "--stride-s needs --window-s")


def test_live_on_a_video_file(capsys, video_file):
    live_main([str(video_file), "--window-s", str(WINDOW_S), "--stride-s", str(STRIDE_S), "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    estimates, summary = [json.loads(x) for x in lines[:-1]], json.loads(lines[-1])
    assert len(estimates) == 3 and summary["frames"] == 100 and summary["estimates"] == 3
    assert all(e["hr_bpm"] is not None and "active_aus" in e for e in estimates)
    assert summary["frames_per_s"] > 0 and summary["latency_ms_median"] > 0


def test_live_bad_sources(tmp_path, capsys, video_file):
    empty = tmp_path / "nothing_written"
    empty.mkdir()
    expect_one_error_line(capsys, live_main, [tmp_path / "missing.mp4"], empty, "missing.mp4", "cannot open")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    expect_one_error_line(capsys, live_main, [junk], empty, "junk.mp4")
    expect_one_error_line(capsys, live_main, [video_file, "--window-s", "-1"], empty, "--window-s", "positive")


def test_speed_benchmark_counts_every_frame():
    from bigsmall_jax.benchmark.live import measure

    got = measure(_face_video(60), FPS, window_s=WINDOW_S, stride_s=STRIDE_S)
    assert got["frames"] == 60 and got["estimates"] == 1 and got["frame_size"] == [120, 160]
    assert got["frames_per_s"] > 0 and got["cpu_ms_per_frame"] > 0 and got["latency_ms_median"] > 0
