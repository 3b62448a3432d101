"""Action units: each changes pixels inside its region, distinctly, scaled by au_strength."""

from __future__ import annotations

import dataclasses

import numpy as np

from bigsmall_jax import synthetic as sy
from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.synthetic import aus

# Small, fast settings: 96-pixel frames.
TINY = sy.SyntheticConfig(n_subjects=4, videos_per_subject=2, duration_s=2.0, frame_size=96)


def _region_mask(name: str, vp: sy.VideoParams, size: int) -> np.ndarray:
    umin, umax, vmin, vmax = sy.AU_REGIONS[name]
    yy, xx = np.mgrid[0:size, 0:size]
    u, v = np.abs(xx - vp.cx) / vp.a, (yy - vp.cy) / vp.b
    return (u >= umin) & (u <= umax) & (v >= vmin) & (v <= vmax)


def test_each_au_changes_pixels_mainly_inside_its_region():
    cfg = dataclasses.replace(TINY, frame_size=128)
    for s in (0, 3):
        sp = sy.subject_params(s, cfg.seed)
        vp = sy.video_params(sp, s, 0, cfg)
        scene = sy.build_scene(sp, vp, cfg.frame_size)
        n = len(AU_NAMES)
        dw, fw = np.zeros((n + 1, sy.N_DELTAS)), np.zeros((n + 1, sy.N_FLOWS))
        dw[np.arange(n), np.arange(n)] = 1.0  # frame k: AU k at full intensity; last frame: neutral
        fw[np.arange(n), np.arange(n)] = 1.0
        frames = sy.render_frames(scene, dw, fw, np.ones(n + 1), 0.0, np.random.default_rng(0)).astype(float)
        for k, name in enumerate(AU_NAMES):
            diff = np.abs(frames[k] - frames[-1]).sum(-1)
            assert diff.max() > 40 and np.sum(diff > 15) > 15, (s, name, diff.max())  # clearly visible
            inside = diff[_region_mask(name, vp, cfg.frame_size)].sum() / diff.sum()
            assert inside > 0.9, (s, name, inside)
    # Different AUs look different from each other.
    flat = frames.reshape(n + 1, -1)
    changes = flat[:n] - flat[-1]
    for a in range(n):
        for b in range(a):
            assert np.abs(changes[a] - changes[b]).sum() > 0.3 * np.abs(changes[a]).sum(), (a, b)


def test_au_strength_scales_the_au_changes():
    sp = sy.subject_params(1, 0)
    vp = sy.video_params(sp, 1, 0, TINY)
    full = sy.build_scene(sp, vp, TINY.frame_size)
    none = sy.build_scene(sp, vp, TINY.frame_size, au_strength=0.0)
    half = sy.build_scene(sp, vp, TINY.frame_size, au_strength=0.5)
    n = len(AU_NAMES)
    assert np.all(none.deltas[:n] == 0) and np.all(none.flows[:n] == 0)
    np.testing.assert_allclose(half.flows[:n], 0.5 * full.flows[:n], atol=1e-5)
    np.testing.assert_array_equal(none.deltas[n:], full.deltas[n:])  # pulse and blink untouched
    np.testing.assert_array_equal(none.base, full.base)


def test_every_au_has_one_drawer_in_label_order():
    assert list(aus.AU_DRAWERS) == list(AU_NAMES) == list(sy.AU_REGIONS)
