"""PURE reader: image sessions with JSON pulse-oximeter samples, with and without /Image entries."""

from __future__ import annotations

import json

import imageio
import numpy as np
import pytest

from bigsmall_jax.datasets import registry
from bigsmall_jax.errors import UserError

T, H, W = 6, 8, 10


def _frames(t=T, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, H, W, 3), dtype=np.uint8)


def _pure_session(root, name, frames, t0_ns=1_392_643_993_642_815_000, frame_ns=33_333_333, image_entries=True):
    session = root / name
    (session / name).mkdir(parents=True)
    frame_ts = [t0_ns + i * frame_ns for i in range(frames.shape[0])]
    for ts, f in zip(frame_ts, frames, strict=True):
        imageio.v3.imwrite(session / name / f"Image{ts}.png", f)
    # Pulse oximeter at 60 Hz, starting 0.1 s before the first frame; waveform linear in time.
    pkg_ts = [t0_ns - 100_000_000 + i * 16_666_667 for i in range(2 * frames.shape[0] + 12)]
    full = [{"Timestamp": ts, "Value": {"waveform": 100 + 6e-8 * (ts - t0_ns), "pulseRate": 66,
                                        "o2saturation": 97, "signalStrength": 4}} for ts in pkg_ts]
    meta = {"/FullPackage": full, "/Image": [{"Timestamp": ts} for ts in frame_ts] if image_entries else []}
    (session / f"{name}.json").write_text(json.dumps(meta))
    return np.array(frame_ts)


@pytest.mark.parametrize("image_entries", [True, False])
def test_pure(tmp_path, image_entries):
    frames = _frames()
    frame_ts = _pure_session(tmp_path, "01-02", frames, image_entries=image_entries)
    _pure_session(tmp_path, "07-01", _frames(seed=3))
    assert registry.list_subjects("pure", tmp_path) == ["01", "07"]
    (rec,) = registry.iter_recordings("pure", tmp_path, subjects=["01"], ppg_grid="timestamps")
    assert rec.name == "01-02" and rec.subject == "01"
    assert rec.fps == pytest.approx(30.0, rel=1e-6)
    np.testing.assert_array_equal(rec.frames, frames)
    np.testing.assert_allclose(rec.bvp, 100 + 6e-8 * (frame_ts - frame_ts[0]), atol=1e-6)
    np.testing.assert_allclose(rec.hr_bpm, 66.0)


def test_pure_published_grid_stretches_the_samples_over_the_frames(tmp_path):
    """The toolbox's grid ignores the timestamps: sample 0 at frame 0, the last sample at the last frame."""
    _pure_session(tmp_path, "01-01", _frames())
    (rec,) = registry.iter_recordings("pure", tmp_path)
    meta = json.loads((tmp_path / "01-01" / "01-01.json").read_text())
    wave = np.array([e["Value"]["waveform"] for e in meta["/FullPackage"]])  # linear in the sample index
    at = np.arange(T) * (wave.size - 1) / (T - 1)
    np.testing.assert_allclose(rec.bvp, wave[0] + at * (wave[1] - wave[0]), rtol=1e-12)
    with pytest.raises(UserError, match="ppg_grid='x': valid: published, timestamps"):
        list(registry.iter_recordings("pure", tmp_path, ppg_grid="x"))


def test_pure_bad_json(tmp_path):
    _pure_session(tmp_path, "01-01", _frames())
    (tmp_path / "01-01" / "01-01.json").write_text("{not json")
    with pytest.raises(UserError, match=r"01-01\.json: not valid JSON"):
        list(registry.iter_recordings("pure", tmp_path))
    (tmp_path / "01-01" / "01-01.json").write_text(json.dumps({"/Image": []}))
    with pytest.raises(UserError, match=r"01-01\.json: unexpected PURE JSON layout"):
        list(registry.iter_recordings("pure", tmp_path))
