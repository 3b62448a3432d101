"""Realism measures: POS on cheeks and forehead reads a clean pulse exactly and pure noise as noise."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bigsmall_jax.datasets.recording import Recording
from bigsmall_jax.synthetic import realism

DATA = Path(__file__).parent.parent / "data"


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


def test_model_scores_reads_the_known_heart_rate_at_every_size(tmp_path, monkeypatch):
    """The published pulse model on still, lossless physical faces at two frame sizes: within 5 beats/min
    of the label (it finds such a pulse on all six diagnostic videos of issue 16), and no rate it has no
    head for."""
    from bigsmall_jax.checkpoints.model_dir import save_checkpoint
    from bigsmall_jax.checkpoints.torch_import import convert_file
    from bigsmall_jax.synthetic import physical
    from bigsmall_jax.synthetic.config import SyntheticConfig

    monkeypatch.setattr(physical, "LOSSLESS_SHARE", 1.0)
    ckpt = save_checkpoint(tmp_path / "heart", *convert_file(DATA / "BP4D_Small_Heart_Clip3_Split1_Epoch4.pth"))
    config = SyntheticConfig(n_subjects=4, videos_per_subject=1, duration_s=12.0, style="physical", nuisance=0.0,
                             au_strength=0.0, test_fraction=0.5, val_fraction=0.0, vary_format=True)
    scores = realism.model_scores(ckpt, config, sizes=(144, 200))
    assert set(scores) == {"144", "200"}
    for s in scores.values():
        assert s["videos"] == 2
        assert s["hr_mae"] is not None and s["hr_mae"] < 5.0
        assert s["hr_mae_fine"] is not None and s["hr_mae_fine"] < 5.0 and s["rr_mae_fine"] is None
        assert s["hr_snr"] is not None and math.isfinite(s["hr_snr"])
        assert s["rr_mae"] is None and s["au_f1_mean"] is None


def test_share_within_counts_missing_rates_as_misses_and_can_keep_resting_rates_only():
    rows = [{"hr_model": 80.0, "hr_true": 78.0}, {"hr_model": None, "hr_true": 70.0},
            {"hr_model": 70.0, "hr_true": 120.0}, {"hr_model": 105.1, "hr_true": 100.0}]
    assert realism.share_within(rows) == 0.25  # 2 off; no rate; 50 off; 5.1 off
    assert realism.share_within(rows, limit_bpm=6.0) == 0.5
    assert realism.share_within(rows, max_true_bpm=realism.RESTING_MAX_BPM) == round(1 / 3, 3)  # 120 left out
    assert realism.share_within(rows, max_true_bpm=50.0) is None
