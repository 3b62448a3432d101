"""`infer` on a file in bounded memory (decoded in blocks) equals the whole-video pipeline; flat videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bigsmall_jax.checkpoints.load import load_checkpoint
from bigsmall_jax.datasets.preprocess import PreprocessConfig, preprocess_recording, standardize_big
from bigsmall_jax.datasets.recording import Recording
from bigsmall_jax.datasets.video_io import read_video, write_video
from bigsmall_jax.evaluation.evaluate import predict_frames, predict_stream
from bigsmall_jax.infer import main as infer_main
from bigsmall_jax.inference.video import infer_frames, infer_video

PTH = Path(__file__).parents[1] / "data" / "bigsmall_random_init.pth"
FPS = 25.0


@pytest.fixture(scope="module")
def model_and_variables():
    return load_checkpoint(PTH)


def _textured_video(t: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = np.arange(t)[:, None, None, None]
    base = rng.integers(60, 190, (1, 40, 48, 3))
    wave = 3 * np.sin(2 * np.pi * 1.3 * k / FPS) + rng.normal(0, 1.0, (t, 40, 48, 3))
    return np.clip(base + wave, 0, 255).astype(np.uint8)


def test_block_wise_file_inference_equals_the_whole_video_pipeline(tmp_path, model_and_variables):
    """70 frames, decoded in blocks of 32, give the outputs of the whole-array pipeline (preprocess_recording
    on every decoded frame, then predict_frames over the whole video) bit for bit."""
    model, variables = model_and_variables
    path = tmp_path / "clip.mp4"
    write_video(path, _textured_video(70), FPS, lossless=True)
    result, frame0 = infer_video(path, PTH, face_crop=None, batch_clips=4)
    frames, _ = read_video(path)
    np.testing.assert_array_equal(frame0, frames[0])
    c = model.config
    pp = PreprocessConfig(big_size=c.big_size, small_size=c.small_size, face_crop="none", n_segment=c.n_segment)
    whole = preprocess_recording(Recording(name="clip", subject="", frames=frames, fps=FPS), pp)
    want, n_pad = predict_frames(model, variables, whole.big_u8, whole.small, 4,
                                 big_transform=lambda b: standardize_big(b, whole.big_mean, whole.big_std))
    assert result.num_frames == 70 and result.n_padded_frames == n_pad == 2
    assert set(result.outputs) == set(want) == {"bvp", "resp", "au"}
    for key in want:
        np.testing.assert_array_equal(result.outputs[key], want[key])
    assert result.hr_bpm is not None and result.rr_bpm is not None
    # infer_frames (decoded frames in memory) runs the same path.
    in_memory = infer_frames(model, variables, frames, FPS, None, batch_clips=4, progress=False)
    for key in want:
        np.testing.assert_array_equal(in_memory.outputs[key], want[key])


def test_predict_stream_over_uneven_blocks_equals_one_call(model_and_variables):
    """Blocks of 1, 2, 3, 13 and 7 frames (batches of 12, the last clip padded) give predict_frames' outputs."""
    model, variables = model_and_variables
    sizes = [1, 2, 3, 13, 7]
    t = sum(sizes)
    rng = np.random.default_rng(t)
    big = rng.normal(size=(t, 144, 144, 3)).astype(np.float32)
    small = rng.normal(size=(t, 9, 9, 3)).astype(np.float32)
    want, n_pad = predict_frames(model, variables, big, small, batch_clips=4)
    edges = np.cumsum([0, *sizes])
    blocks = [(big[a:b], small[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    got, n_pad2 = predict_stream(model, variables, blocks, t, batch_clips=4)
    assert n_pad2 == n_pad
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


def test_blank_video_reports_no_rates(tmp_path, capsys):
    """A blank grey video with --no-face-crop reported HR 46.9 / RR 23.4: waves of the model's clip
    structure with no content. No pixel changes, so no rate is reported, with a warning saying why."""
    path = tmp_path / "grey.mp4"
    write_video(path, np.full((60, 36, 36, 3), 128, np.uint8), FPS)
    out = tmp_path / "out.json"
    infer_main([str(path), "--checkpoint", str(PTH), "--output", str(out), "--no-face-crop", "--batch-clips", "4"])
    doc = json.loads(out.read_text())
    assert doc["hr_bpm"] is None and doc["rr_bpm"] is None
    assert len(doc["bvp"]) == len(doc["resp"]) == 60  # the waves are still written
    captured = capsys.readouterr()
    assert "grey.mp4: no pixel of the face crop changes from frame to frame" in captured.err
    assert "no heart or respiration rate is reported" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["hr_bpm"] is None and summary["rr_bpm"] is None
