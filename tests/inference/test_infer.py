"""`python -m bigsmall_jax.infer`: the whole pipeline on a video file, against a plain reference, and bad input."""

from __future__ import annotations

import json
import logging
import resource
from pathlib import Path

import imageio
import jax
import numpy as np
import pytest
from cli_checks import expect_nothing_changed, expect_one_error_line
from face_drawing import draw_face

from bigsmall_jax.checkpoints import load_checkpoint, save_checkpoint
from bigsmall_jax.checkpoints.torch_import import convert_file
from bigsmall_jax.datasets.preprocess import PreprocessConfig, big_small, preprocess_recording, standardize_big
from bigsmall_jax.datasets.recording import AU_NAMES, Recording
from bigsmall_jax.evaluation import signals
from bigsmall_jax.evaluation.evaluate import pad_to_segments, predict_frames
from bigsmall_jax.infer import main as infer_main
from bigsmall_jax.inference.video import infer_frames

DATA = Path(__file__).parents[1] / "data"
FPS = 25.0
T = 50  # 2 s: 16 clips of 3 frames + 2 frames, so the last clip needs 1 padded frame
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# FFmpeg runs in a subprocess; forking after JAX started its threads warns, harmlessly for a plain exec.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")


def _write(path: Path, frames: np.ndarray, fps: float = FPS) -> Path:
    # Lossless RGB H.264, so the decoded frames equal what was written.
    with imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264rgb", pixelformat="rgb24",
                            macro_block_size=1, output_params=["-qp", "0"], ffmpeg_log_level="error") as w:
        for f in frames:
            w.append_data(f)
    return path


def _decode(path: Path) -> np.ndarray:
    with imageio.get_reader(path, format="FFMPEG") as r:
        return np.stack(list(r.iter_data()))


def _face_video(t: int = T, h: int = 96, w: int = 96, seed: int = 0) -> np.ndarray:
    """Textured frames with a green-channel 'pulse' at 1.5 Hz and a slow brightness 'breath'."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 190, (h, w, 3)).astype(np.float64)
    k = np.arange(t)[:, None, None, None]
    pulse = 3.0 * np.sin(2 * np.pi * 1.5 * k / FPS) * np.array([0, 1, 0])
    breath = 4.0 * np.sin(2 * np.pi * 0.3 * k / FPS)
    return np.clip(base + pulse + breath + rng.normal(0, 1.0, (t, h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    config, variables = convert_file(DATA / "bigsmall_random_init.pth")
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "bigsmall", config, variables)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("video") / "clip.mp4", _face_video())


def _run(capsys, *argv):
    infer_main([str(a) for a in argv])
    out = capsys.readouterr().out
    return json.loads(out.strip().splitlines()[-1])


def _reference_outputs(model, variables, frames: np.ndarray) -> dict[str, np.ndarray]:
    """Plain reference: the whole-array recipe (`big_small`), the last frame repeated to fill the last clip,
    one forward pass over everything, the padded frames' outputs dropped."""
    big, small = big_small(frames)
    n = len(frames)
    big, _ = pad_to_segments(big, model.config.n_segment)
    small, _ = pad_to_segments(small, model.config.n_segment)
    out = model.apply(variables, big, small)
    return {k: np.asarray(v)[:n, 0] if k != "au" else np.asarray(v)[:n] for k, v in out.items()}


@pytest.mark.parametrize("batch_clips", [16, 4])
def test_infer_json_matches_plain_reference(tmp_path, capsys, ckpt, video, batch_clips):
    out, png = tmp_path / "out.json", tmp_path / "out.png"
    summary = _run(capsys, video, "--checkpoint", ckpt, "--output", out, "--no-face-crop", "--plot", png,
                   "--batch-clips", batch_clips)
    doc = json.loads(out.read_text())
    assert summary["n_padded_frames"] == doc["n_padded_frames"] == 1  # 50 = 16 * 3 + 2
    assert doc["fps"] == pytest.approx(FPS) and doc["num_frames"] == T
    assert doc["face_crop"] == "none" and doc["face_box"] is None
    assert doc["au_names"] == list(AU_NAMES)
    bvp, resp, probs = (np.asarray(doc[k]) for k in ("bvp", "resp", "au_probs"))
    assert bvp.shape == resp.shape == (T,) and probs.shape == (T, 12)
    assert np.all((probs > 0) & (probs < 1))
    # The rates are the protocol's on the written waves.
    assert doc["hr_bpm"] == signals.wave_to_rate(bvp, FPS, "hr")
    assert doc["rr_bpm"] == signals.wave_to_rate(resp, FPS, "rr")
    # The outputs equal an independent decode + reference preprocessing + one unbatched forward pass.
    model, variables = load_checkpoint(ckpt)
    ref = _reference_outputs(model, variables, _decode(video))
    np.testing.assert_allclose(bvp, ref["bvp"], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(resp, ref["resp"], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-ref["au"].astype(np.float64))), atol=1e-5)
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.png"]  # no temp files left


@pytest.mark.parametrize("filename,keys", [
    ("BP4D_Small_Heart_Clip3_Split1_Epoch4.pth", {"bvp", "hr_bpm"}),
    ("BP4D_Small_Resp_Clip3_Split1_Epoch4.pth", {"resp", "rr_bpm"}),
    ("BP4D_Big_AU_Clip3_Split1_Epoch4.pth", {"au_probs", "au_names"}),
])
def test_pathway_checkpoint_gives_only_its_keys(tmp_path, capsys, video, filename, keys):
    out = tmp_path / "out.json"
    _run(capsys, video, "--checkpoint", DATA / filename, "--output", out, "--no-face-crop", "--plot",
         tmp_path / "p.png")
    doc = json.loads(out.read_text())
    task_keys = {"bvp", "hr_bpm", "resp", "rr_bpm", "au_probs", "au_names"}
    assert task_keys & set(doc) == keys
    assert doc["n_padded_frames"] == 1 and doc["num_frames"] == T
    if "bvp" in keys:
        assert len(doc["bvp"]) == T and doc["hr_bpm"] == signals.wave_to_rate(np.asarray(doc["bvp"]), FPS, "hr")
    if "au_probs" in keys:
        assert np.shape(doc["au_probs"]) == (T, 12)
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("t", [6, 8, 40])
def test_predict_frames_pads_and_batches_like_one_pass(ckpt, t):
    model, variables = load_checkpoint(ckpt)
    rng = np.random.default_rng(t)
    big = rng.normal(size=(t, 144, 144, 3)).astype(np.float32)
    small = rng.normal(size=(t, 9, 9, 3)).astype(np.float32)
    got, n_pad = predict_frames(model, variables, big, small, batch_clips=4)
    assert n_pad == (3 - t % 3) % 3
    # Reference: the last frame repeated by hand, every clip in one pass.
    idx = np.minimum(np.arange(t + n_pad), t - 1)
    ref = model.apply(variables, big[idx], small[idx])
    for key in ("au", "bvp", "resp"):
        want = np.asarray(ref[key])[:t]
        np.testing.assert_allclose(got[key], want if key == "au" else want[:, 0], atol=1e-5, rtol=1e-5)


def test_face_crop_equals_preprocessing_on_raw_frames(ckpt):
    """infer crops + resizes itself (to report the box); it must equal preprocess_recording's own crop."""
    model, variables = load_checkpoint(ckpt)
    rng = np.random.default_rng(1)
    face = draw_face(120, 160, 70, 60, 32).astype(np.int16)
    frames = np.clip(face[None] + rng.integers(-4, 5, (9, 120, 160, 3)), 0, 255).astype(np.uint8)
    result = infer_frames(model, variables, frames, FPS, "first", progress=False)
    video = preprocess_recording(Recording("v", "s", frames, FPS), PreprocessConfig(face_crop="first"))
    out = model.apply(variables, standardize_big(video.big_u8, video.big_mean, video.big_std), video.small)
    np.testing.assert_allclose(result.outputs["bvp"], np.asarray(out["bvp"])[:, 0], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(result.outputs["au"], np.asarray(out["au"]), atol=1e-5, rtol=1e-5)
    x, y, w, h = result.boxes[0]
    assert w == h and x <= 70 <= x + w and y <= 60 <= y + h  # a square box around the face centre
    assert result.n_padded_frames == 0 and result.hr_bpm is None  # 9 frames: too short for a rate


# ------------------------------------------------------------------------------------------------- bad input


def _expect_user_error(capsys, tmp_path, argv, *needles):
    out = tmp_path / "out" / "res.json"
    out.parent.mkdir(exist_ok=True)
    expect_one_error_line(capsys, infer_main, [*argv, "--output", out, "--plot", out.with_suffix(".png")],
                          out.parent, *needles)


def test_bad_videos(tmp_path, capsys, ckpt):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"definitely not a video " * 200)
    _expect_user_error(capsys, tmp_path, [corrupt, "--checkpoint", ckpt], "corrupt.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    _expect_user_error(capsys, tmp_path, [empty, "--checkpoint", ckpt], "empty.mp4", "empty")
    missing = tmp_path / "missing.mp4"
    _expect_user_error(capsys, tmp_path, [missing, "--checkpoint", ckpt], "missing.mp4")
    short = _write(tmp_path / "short.mp4", _face_video(t=2))
    _expect_user_error(capsys, tmp_path, [short, "--checkpoint", ckpt, "--no-face-crop"], "short.mp4", "2 frame")


def test_bad_checkpoints(tmp_path, capsys, video):
    _expect_user_error(capsys, tmp_path, [video, "--checkpoint", tmp_path / "nope"], "nope", "no such")
    not_ckpt = tmp_path / "not_a_checkpoint"
    not_ckpt.mkdir()
    (not_ckpt / "notes.txt").write_text("hello")
    _expect_user_error(capsys, tmp_path, [video, "--checkpoint", not_ckpt], "not_a_checkpoint",
                       "not a bigsmall-jax checkpoint")


@pytest.mark.parametrize("fps", ["0", "-25"])
def test_bad_fps(tmp_path, capsys, ckpt, video, fps):
    _expect_user_error(capsys, tmp_path, [video, "--checkpoint", ckpt, "--fps", fps], "clip.mp4", "--fps")


def test_no_face_suggests_no_face_crop(tmp_path, capsys, ckpt):
    grey = _write(tmp_path / "grey.mp4", np.full((6, 64, 64, 3), 128, np.uint8))
    _expect_user_error(capsys, tmp_path, [grey, "--checkpoint", ckpt], "grey.mp4", "no face", "--no-face-crop")


def test_outputs_inside_an_input_are_refused(tmp_path, capsys, ckpt, video):
    # Nothing is written into the checkpoint (its config would be overwritten) or into a folder-of-images
    # video, also through a symbolic link to the checkpoint.
    base = [video, "--checkpoint", ckpt]
    expect_nothing_changed(capsys, infer_main, [*base, "--output", ckpt / "bigsmall_config.json"], ckpt.parent,
                           "bigsmall_config.json", "--output lies inside the input")
    expect_nothing_changed(capsys, infer_main, [*base, "--output", ckpt / "variables" / "new.json"], ckpt.parent,
                           "new.json", "--output lies inside the input")
    expect_nothing_changed(capsys, infer_main, [*base, "--output", tmp_path / "res.json", "--plot", ckpt / "p.png"],
                           ckpt.parent, "p.png", "--plot lies inside the input")
    link = tmp_path / "link"
    link.symlink_to(ckpt, target_is_directory=True)
    expect_nothing_changed(capsys, infer_main, [*base, "--output", link / "bigsmall_config.json"], ckpt.parent,
                           "link", "--output lies inside the input")
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "0000.png").write_bytes(b"not read")
    expect_nothing_changed(capsys, infer_main, [frames, "--checkpoint", ckpt, "--fps", "30", "--output",
                                                frames / "res.json"], tmp_path, "--output lies inside the input")
    assert not (tmp_path / "res.json").exists()


# ------------------------------------------------------------------------------- output locations, NaN outputs


def test_unwritable_outputs_are_refused_before_the_video_is_read(tmp_path, capsys, ckpt, video):
    """/proc and /sys refuse new files even to root; a path under a file is no folder at all."""
    base = [video, "--checkpoint", ckpt, "--no-face-crop"]
    expect_nothing_changed(capsys, infer_main, [*base, "--output", "/proc/res.json"], tmp_path,
                           "/proc/res.json", "cannot write into the folder of --output")
    expect_nothing_changed(capsys, infer_main, [*base, "--output", tmp_path / "res.json", "--plot", "/sys/p.png"],
                           tmp_path, "/sys/p.png", "cannot write into the folder of --plot")
    (tmp_path / "file").write_text("x")
    expect_nothing_changed(capsys, infer_main, [*base, "--output", tmp_path / "file" / "res.json"], tmp_path,
                           "res.json", "does not exist")


def test_a_full_disk_is_one_error_line_and_leaves_nothing(tmp_path, capsys, ckpt, video):
    """Writes beyond 4 KiB fail (RLIMIT_FSIZE: EFBIG, as ENOSPC on a full disk; Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    out = tmp_path / "out"
    out.mkdir()
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        expect_one_error_line(capsys, infer_main, [video, "--checkpoint", ckpt, "--no-face-crop", "--output",
                                                   out / "res.json"], out, "res.json", "cannot write it")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_weights_that_overflow_to_nan_are_refused(tmp_path, capsys, ckpt, video):
    """Finite but huge weights (1e30) overflow to inf and NaN: an error naming the checkpoint, not a JSON of NaN."""
    config, variables = convert_file(DATA / "bigsmall_random_init.pth")
    huge = jax.tree_util.tree_map(lambda x: np.asarray(x) * np.float32(1e30), variables)
    absl = logging.getLogger("absl")  # orbax's INFO lines would go to the closed stream of an earlier test's capsys
    level = absl.level
    absl.setLevel(logging.WARNING)
    try:
        bad = save_checkpoint(tmp_path / "huge", config, huge)
    finally:
        absl.setLevel(level)
    _expect_user_error(capsys, tmp_path, [video, "--checkpoint", bad, "--no-face-crop"], str(bad),
                       "NaN or inf on", "frames of")
