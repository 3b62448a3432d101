"""The scene of a video: the face box frames the drawn face."""

from __future__ import annotations

from bigsmall_jax import synthetic as sy

# Small, fast settings: 96-pixel frames.
TINY = sy.SyntheticConfig(n_subjects=4, videos_per_subject=2, duration_s=2.0, frame_size=96)


def test_face_box_frames_the_face():
    for s in range(4):
        sp = sy.subject_params(s, TINY.seed)
        vp = sy.video_params(sp, s, 1, TINY)
        scene = sy.build_scene(sp, vp, TINY.frame_size)
        x, y, w, h = scene.face_box
        inner = scene.skin[y:y + h, x:x + w] > 0
        assert inner.mean() > 0.6  # mostly skin
        assert scene.skin[int(y + h / 2), int(x + w / 2)] > 0  # centred on the face
        assert abs((x + w / 2) - vp.cx) < 2 and 1.8 * vp.a < w < 2.2 * vp.a
