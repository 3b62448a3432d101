"""Rendering nuisances: sensor noise and JPEG compression change frames a little."""

from __future__ import annotations

import dataclasses

import numpy as np

from bigsmall_jax import synthetic as sy

# Small, fast settings: 96-pixel frames.
TINY = sy.SyntheticConfig(n_subjects=4, videos_per_subject=2, duration_s=2.0, frame_size=96)


def test_compression_and_noise_change_frames_a_little():
    cfg = dataclasses.replace(TINY, duration_s=0.4)
    clean = sy.generate_recording(0, 0, dataclasses.replace(cfg, noise_std=0.0))
    noisy = sy.generate_recording(0, 0, cfg)
    jpeg = sy.generate_recording(0, 0, dataclasses.replace(cfg, compression=True, jpeg_quality=50))
    d_noise = np.abs(noisy.frames.astype(float) - clean.frames).mean()
    d_jpeg = np.abs(jpeg.frames.astype(float) - noisy.frames).mean()
    assert 0.3 < d_noise < 4.0
    assert 0.3 < d_jpeg < 6.0
    np.testing.assert_array_equal(jpeg.bvp, noisy.bvp)
