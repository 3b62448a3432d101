"""Drawing primitives: coverage from signed distances, ellipse distances, soft windows, the canvas."""

from __future__ import annotations

import numpy as np

from bigsmall_jax import synthetic as sy
from bigsmall_jax.synthetic import drawing


def test_coverage_and_ellipse_distance():
    np.testing.assert_array_equal(drawing.coverage(np.array([-2.0, 0.0, 0.5, 3.0])), [1.0, 0.5, 0.0, 0.0])
    x = np.array([10.0, 14.0, 18.0, 10.0])
    y = np.array([20.0, 20.0, 20.0, 26.0])
    sd = drawing.ellipse_sd(x, y, 10.0, 20.0, 4.0, 2.0)
    np.testing.assert_allclose(sd, [-2.0, 0.0, 4.0, 4.0])  # centre: -min radius; on the edge: 0


def test_window_line_both_and_grid():
    x = np.linspace(-1.0, 2.0, 301)
    w = drawing.window(x, 0.0, 1.0, soft=0.02)
    assert np.all(w[(x > 0.02) & (x < 0.98)] == 1.0) and np.all(w[(x < -0.02) | (x > 1.02)] == 0.0)
    assert drawing.line(np.array([0.0]), 0.1)[0] == 1.0
    assert drawing.both(lambda s: np.array([s, 2.0])).tolist() == [0.0, 4.0]
    cfg = sy.SyntheticConfig(frame_size=64)
    vp = sy.video_params(sy.subject_params(0, 0), 0, 0, cfg)
    grid = drawing.face_grid(vp, 64)
    assert grid.size == 64 and grid.u.shape == (64, 64)
    i, j = int(round(vp.cy)), int(round(vp.cx))
    assert abs(grid.u[i, j]) < 1 / vp.a and abs(grid.v[i, j]) < 1 / vp.b
    assert grid.gauss(grid.u[i, j], grid.v[i, j], 0.1, 0.1)[i, j] == 1.0


def test_canvas_paints_over_and_tracks_skin():
    canvas = drawing.Canvas(4)
    full = np.ones((4, 4))
    canvas.paint((200.0, 100.0, 50.0), full, skin=1.0)
    half = np.zeros((4, 4))
    half[:2] = 0.5
    canvas.paint((0.0, 0.0, 0.0), half)
    np.testing.assert_allclose(canvas.rgb[0, 0], [100.0, 50.0, 25.0])
    np.testing.assert_allclose(canvas.rgb[3, 3], [200.0, 100.0, 50.0])
    assert canvas.alpha.min() == 1.0
    np.testing.assert_allclose(canvas.skin[:, 0], [0.5, 0.5, 1.0, 1.0])
