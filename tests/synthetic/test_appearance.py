"""Subject appearance: fixed across a subject's videos, distinct between subjects."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from bigsmall_jax import synthetic as sy

# Small, fast settings: 96-pixel frames.
TINY = sy.SyntheticConfig(n_subjects=4, videos_per_subject=2, duration_s=2.0, frame_size=96)


def _neutral(scene: sy.Scene, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, sy.N_DELTAS)), np.zeros((n, sy.N_FLOWS))


def test_subject_appearance_fixed_across_videos_and_distinct_between_subjects():
    cfg = dataclasses.replace(TINY, frame_size=128)

    def face_crop(s: int, v: int) -> np.ndarray:
        # The subject layer without AUs, pulse, light or noise: crop its face box, normalise each channel.
        sp = sy.subject_params(s, cfg.seed)
        vp = sy.video_params(sp, s, v, cfg)
        scene = sy.build_scene(sp, vp, cfg.frame_size)
        frame = sy.render_frames(scene, *_neutral(scene), np.ones(1), 0.0, np.random.default_rng(0))[0]
        x, y, w, h = scene.face_box
        side = int(1.4 * w)
        x0, y0 = max(0, x + w // 2 - side // 2), max(0, y + h // 2 - side // 2)
        crop = cv2.resize(frame[y0:y0 + side, x0:x0 + side].astype(np.float32), (24, 24),
                          interpolation=cv2.INTER_AREA)
        return crop / crop.reshape(-1, 3).mean(0)

    assert sy.subject_params(3, 0) == sy.subject_params(3, 0)
    assert sy.subject_params(3, 0) != sy.subject_params(2, 0)
    assert sy.subject_params(3, 0) != sy.subject_params(3, 1)
    crops = {(s, v): face_crop(s, v) for s in range(4) for v in range(2)}
    # Re-identification: the second video of each subject is closest to the first video of the same one.
    dist = np.array([[np.abs(crops[s, 1] - crops[r, 0]).mean() for r in range(4)] for s in range(4)])
    np.testing.assert_array_equal(np.argmin(dist, axis=1), np.arange(4), err_msg=str(dist))
