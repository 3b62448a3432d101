"""The rate quality index: clean rhythms score high, noise is flagged, short waves have no rate."""

import numpy as np
import pytest

from bigsmall_jax.datasets.preprocess import diff_normalize_label
from bigsmall_jax.evaluation import quality

FS = 30.0


@pytest.mark.parametrize("kind,rate", [("hr", 72.0), ("hr", 120.0), ("rr", 15.0)])
def test_clean_rhythm_scores_high(kind, rate):
    t = np.arange(int(20 * FS)) / FS
    wave = diff_normalize_label(np.sin(2 * np.pi * rate / 60 * t))
    est = quality.rate_estimate(wave, FS, kind)
    assert est.rate == pytest.approx(rate, abs=60 * FS / 1024)  # one FFT bin
    assert est.snr_db > (10 if kind == "hr" else 5) and not est.low_quality  # rr: its +-2/min is ~1 bin


@pytest.mark.parametrize("kind", ["hr", "rr"])
def test_noise_is_flagged(kind):
    rng = np.random.default_rng(1)
    flags = [quality.rate_estimate(rng.standard_normal(int(10 * FS)), FS, kind).low_quality for _ in range(200)]
    assert np.mean(flags) >= 0.9


def test_threshold_is_the_noise_percentile():
    for kind in ("hr", "rr"):
        assert quality.calibrate_threshold(kind, draws=150, seed=2) <= quality.LOW_QUALITY_DB[kind] + 0.5


def test_too_short_gives_no_rate_and_a_flag():
    est = quality.rate_estimate(np.zeros(5), FS, "hr")
    assert est.rate is None and est.snr_db is None and est.low_quality
    assert est.to_dict("hr_bpm") == {"hr_bpm": None, "hr_snr_db": None, "hr_low_quality": True}
