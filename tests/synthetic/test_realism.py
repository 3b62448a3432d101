"""Realism measures: POS on cheeks and forehead reads a clean pulse exactly and pure noise as noise."""

from __future__ import annotations

import numpy as np

from bigsmall_jax.datasets.recording import Recording
from bigsmall_jax.synthetic import realism


def _video(pulse_amp: float, noise: float, hr_bpm: float = 72.0, fps: float = 25.0, seconds: float = 12.0):
    t = np.arange(int(seconds * fps)) / fps
    wave = np.sin(2 * np.pi * hr_bpm / 60.0 * t)
    colour = np.array([180.0, 130.0, 100.0]) * (1.0 - pulse_amp * np.array([0.33, 1.0, 0.6]) * wave[:, None])
    frames = colour[:, None, None, :] + noise * np.random.default_rng(0).standard_normal((len(t), 40, 40, 3))
    return Recording(name="v", subject="s", frames=np.clip(np.rint(frames), 0, 255).astype(np.uint8), fps=fps,
                     hr_bpm=np.full(len(t), hr_bpm), face_box=(4, 4, 32, 32))


def test_roi_is_forehead_and_cheeks_inside_the_box():
    mask = realism.roi_mask((10, 20, 100, 100), 160, 160)
    assert mask[20 + 10, 60] and mask[20 + 50, 10 + 20] and mask[20 + 50, 10 + 80]  # forehead, cheeks
    assert not mask[20 + 50, 60] and not mask[20 + 85, 60] and not mask[:20].any()  # nose, mouth, above
    assert realism.roi_mask((-30, -30, 100, 100), 64, 64).any()  # clipped to the frame


def test_pos_scores_clean_pulse_and_noise():
    clean = realism.pos_scores(_video(0.01, 0.0))
    assert clean["hr_abs_error"] < 1.5 and clean["snr_db"] > 10
    assert 0.015 < clean["green_amp"] < 0.021  # 2% peak to peak
    noisy = realism.pos_scores(_video(0.0, 3.0))
    assert noisy["snr_db"] < 0  # white noise: about -7 dB (24 of 138 beats/min lie in the signal bins)
    summary = realism.summarize([clean, noisy])
    assert summary["videos"] == 2 and summary["within_5bpm"] in (0.5, 1.0)
