"""UBFC-rPPG and PURE as the rPPG-Toolbox's loaders read them (TSCAN configs: 72 x 72 face crops, 180-frame
clips), array by array against the arrays its code computed from the same trees."""

from __future__ import annotations

import numpy as np
import pytest
from loader_reference import golden, loader_dir, max_abs

from bigsmall_jax.datasets import registry
from bigsmall_jax.datasets.face import toolbox_face_box
from bigsmall_jax.datasets.preprocess import PreprocessConfig, chunk_video, preprocess_recording, standardize_big


@pytest.mark.parametrize("name, dataset, label_key", [("ubfc", "ubfc_rppg", "bvp_file"),
                                                      ("pure", "pure", "bvp_resampled")])
def test_toolbox_loader_parity(name, dataset, label_key):
    g = golden(name)
    (rec,) = registry.iter_recordings(dataset, loader_dir(name) / "tree")
    np.testing.assert_array_equal(rec.frames, g["frames_read"])
    assert max_abs(rec.bvp, g[label_key]) <= 1e-12
    assert list(toolbox_face_box(rec.frames[0], 1.5)) == list(g["face_box_used"])
    assert registry.make_config(dataset).face_crop == "toolbox"
    video = preprocess_recording(rec, PreprocessConfig(big_size=72, small_size=72, face_crop="toolbox",
                                                       n_segment=180))
    np.testing.assert_array_equal(video.big_u8, g["face_resized"])
    # NumPy 1 vs 2 alone moves the diff-normalized frames (values up to ~80) by up to 3e-5.
    assert max_abs(video.small, g["diffnorm"]) <= 3e-5
    assert max_abs(standardize_big(video.big_u8, video.big_mean, video.big_std), g["standardized"]) <= 1e-5
    assert max_abs(video.labels["bvp"], g["label_diffnorm"]) <= 1e-6  # stored as float32
    (clip,) = chunk_video(video, 180)
    data = np.concatenate([clip["small"], standardize_big(clip["big_u8"], video.big_mean, video.big_std)], -1)
    assert max_abs(data, g["data_clips"][0]) <= 3e-5
    assert max_abs(clip["labels"]["bvp"], g["label_clips"][0]) <= 1e-6
