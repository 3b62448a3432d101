"""Tests of bigsmall_jax.evaluation.metrics against closed-form cases and hand-computed numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from rate_waves import diff_normalize, fft_bin_per_min, sinusoid, video_entry

from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.errors import UserError
from bigsmall_jax.evaluation import metrics

# ------------------------------------------------------------------------------------------------
# Windows and errors
# ------------------------------------------------------------------------------------------------


def test_window_slices():
    assert metrics.window_slices(100, 10.0, None) == [slice(0, 100)]
    assert metrics.window_slices(100, 10.0, 3.0) == [slice(0, 30), slice(30, 60), slice(60, 90)]
    assert metrics.window_slices(100, 10.0, 20.0) == [slice(0, 100)]
    with pytest.raises(UserError):
        metrics.window_slices(100, 10.0, -1.0)


def test_windowed_rates_follow_a_rate_change():
    fs = 25.0
    wave = np.concatenate([sinusoid(60.0, fs, 30.0), sinusoid(120.0, fs, 30.0)])
    dn = diff_normalize(wave)
    pred, label = metrics.windowed_rates(dn, dn, fs, "hr", window_s=30.0)
    tol = fft_bin_per_min(750, fs)
    np.testing.assert_allclose(pred, [60.0, 120.0], atol=tol)
    np.testing.assert_array_equal(pred, label)
    with pytest.raises(UserError, match="samples"):
        metrics.windowed_rates(dn, dn[:-10], fs, "hr")


def test_rate_errors_hand_computed():
    pred = [70.0, 80.0, 90.0, 100.0, np.nan]
    label = [72.0, 78.0, 95.0, 100.0, 60.0]  # the NaN pair is left out
    e = metrics.rate_errors(pred, label)
    assert e["n"] == 4
    # errors -2, 2, -5, 0
    assert e["mean_error"] == pytest.approx(-1.25)
    assert e["mae"] == pytest.approx(2.25)
    assert e["mae_se"] == pytest.approx(math.sqrt(12.75 / 4) / 2)  # |e| deviations from 2.25
    assert e["rmse"] == pytest.approx(math.sqrt(33 / 4))
    # squared errors 4, 4, 25, 0: mean 8.25, population variance (3*... ) computed term by term
    var_sq = ((4 - 8.25) ** 2 * 2 + (25 - 8.25) ** 2 + (0 - 8.25) ** 2) / 4
    assert e["rmse_se"] == pytest.approx(math.sqrt(var_sq) / (2 * 2 * math.sqrt(8.25)))
    assert e["mape"] == pytest.approx((2 / 72 + 2 / 78 + 5 / 95 + 0) / 4 * 100)
    # Pearson by hand: deviations (-15,-5,5,15) and (-14.25,-8.25,8.75,13.75)
    r = 505 / math.sqrt(500 * 536.75)
    assert e["pearson"] == pytest.approx(r)
    assert e["pearson_se"] == pytest.approx(math.sqrt((1 - r * r) / 2))


def test_rate_errors_perfect_and_empty():
    e = metrics.rate_errors([60.0, 70.0, 80.0], [60.0, 70.0, 80.0])
    assert e["mae"] == 0 and e["rmse"] == 0 and e["mape"] == 0 and e["pearson"] == pytest.approx(1.0)
    assert metrics.rate_errors([], [])["n"] == 0
    assert math.isnan(metrics.rate_errors([np.nan], [1.0])["mae"])


# ------------------------------------------------------------------------------------------------
# Action units
# ------------------------------------------------------------------------------------------------

# Three AUs, eight frames. AU0: TP 2, FN 1, FP 1, TN 4. AU1: no positives, none predicted.
# AU2: frames 1 and 3 unlabeled (NaN) -- frame 1 is predicted positive and would be a FP if NaN
# counted as 0; on the 6 labeled frames TP 1, FP 1, FN 2, TN 2.
AU_LABELS = np.array([
    [1, 0, 1], [1, 0, np.nan], [1, 0, 0], [0, 0, np.nan],
    [0, 0, 1], [0, 0, 1], [0, 0, 0], [0, 0, 0],
], dtype=np.float64)
AU_PRED = np.array([
    [1, 0, 1], [1, 0, 1], [0, 0, 1], [1, 0, 0],
    [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0],
], dtype=bool)


def test_au_metrics_known_confusion_matrices():
    logits = np.where(AU_PRED, 2.0, -2.0)
    m = metrics.au_metrics(logits, AU_LABELS)
    np.testing.assert_allclose(m["precision"], [2 / 3, 0.0, 1 / 2])
    np.testing.assert_allclose(m["recall"], [2 / 3, 0.0, 1 / 3])
    np.testing.assert_allclose(m["f1"], [2 / 3, 0.0, 2 / 5])
    np.testing.assert_allclose(m["accuracy"], [6 / 8, 1.0, 3 / 6])
    assert m["f1_mean"] == pytest.approx((2 / 3 + 0 + 2 / 5) / 3)
    assert m["accuracy_mean"] == pytest.approx((6 / 8 + 1 + 3 / 6) / 3)
    np.testing.assert_array_equal(m["support"], [3, 0, 3])
    np.testing.assert_array_equal(m["num_labeled"], [8, 8, 6])
    # Same with probabilities, and with a leading batch axis.
    probs = np.where(AU_PRED, 0.9, 0.1)
    m2 = metrics.au_metrics(probs.reshape(2, 4, 3), AU_LABELS.reshape(2, 4, 3), from_logits=False)
    np.testing.assert_allclose(m2["f1"], m["f1"])


def test_roc_auc_counts_the_pairs_ranked_right():
    # 2 positives x 3 negatives = 6 pairs: 0.9 beats all 3, 0.4 beats 0.1 and ties 0.4 (half): 4.5 / 6.
    assert metrics.roc_auc([0.9, 0.4, 0.4, 0.1, 0.5], [1, 1, 0, 0, 0]) == pytest.approx(4.5 / 6)
    assert metrics.roc_auc([3.0, 2.0, 1.0], [1, 0, 0]) == 1.0
    assert metrics.roc_auc([3.0, 2.0, 1.0], [0, 1, 1]) == 0.0
    assert metrics.roc_auc(np.zeros(10), np.arange(10) % 2) == 0.5  # all tied
    assert math.isnan(metrics.roc_auc([0.3, 0.7], [1, 1]))
    rng = np.random.default_rng(0)  # a monotone map of the scores leaves it unchanged
    s, y = rng.normal(size=200), rng.integers(0, 2, 200)
    assert metrics.roc_auc(np.exp(s), y) == pytest.approx(metrics.roc_auc(s, y))
    m = metrics.au_metrics(np.stack([s, -s], 1), np.stack([y, y], 1))
    np.testing.assert_allclose(m["auc"], [metrics.roc_auc(s, y), 1 - metrics.roc_auc(s, y)])


def test_au_threshold_is_inclusive_and_unlabeled_au_is_nan():
    labels = np.array([[1.0, np.nan], [0.0, np.nan]])
    m = metrics.au_metrics(np.array([[0.0, 5.0], [-1.0, 5.0]]), labels)  # sigmoid(0) = 0.5 -> positive
    assert m["f1"][0] == 1.0 and m["recall"][0] == 1.0
    assert math.isnan(m["f1"][1]) and m["f1_mean"] == 1.0


def _plain_loop_au(probs, labels, threshold=0.5):
    """Per-AU F1 written as an explicit loop over frames (independent reference)."""
    f1s = []
    for j in range(labels.shape[1]):
        tp = fp = fn = 0
        for i in range(labels.shape[0]):
            if np.isnan(labels[i, j]):
                continue
            p = probs[i, j] >= threshold
            if p and labels[i, j] == 1:
                tp += 1
            elif p:
                fp += 1
            elif labels[i, j] == 1:
                fn += 1
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return np.array(f1s)


def test_au_metrics_match_plain_loop_on_random_data():
    rng = np.random.default_rng(3)
    labels = (rng.random((300, 12)) < 0.3).astype(np.float64)
    labels[rng.random((300, 12)) < 0.1] = np.nan
    probs = rng.random((300, 12))
    m = metrics.au_metrics(probs, labels, from_logits=False)
    np.testing.assert_allclose(m["f1"], _plain_loop_au(probs, labels), atol=1e-12)


def test_au_metrics_bad_input():
    with pytest.raises(UserError, match="shape"):
        metrics.au_metrics(np.zeros((4, 12)), np.zeros((4, 11)))
    with pytest.raises(UserError, match="0, 1 or NaN"):
        metrics.au_metrics(np.zeros((2, 2)), np.array([[0.0, 2.0], [1.0, 0.0]]))


# ------------------------------------------------------------------------------------------------
# Whole test sets
# ------------------------------------------------------------------------------------------------


def test_evaluate_videos_end_to_end():
    videos = [
        video_entry("a", 30.0, 72.0, 72.0, 15.0, 15.0),
        video_entry("b", 25.0, 90.0, 72.0, 12.0, 18.0),
        video_entry("c", 30.0, 100.0, 110.0, 20.0, 20.0),
    ]
    res = metrics.evaluate_videos(videos)
    json.dumps(res, allow_nan=False)  # strictly JSON-serialisable
    assert res["num_videos"] == 3 and res["hr_n"] == 3 and res["rr_n"] == 3
    tol = fft_bin_per_min(1200, 30.0)  # one bin at 40 s, 30 fps (coarser than at 25 fps)
    assert res["hr_mae"] == pytest.approx((0 + 18 + 10) / 3, abs=tol)
    assert res["rr_mae"] == pytest.approx((0 + 6 + 0) / 3, abs=tol)
    pv = {v["video_id"]: v for v in res["per_video"]}
    assert pv["b"]["hr_pred"] == pytest.approx(90.0, abs=tol)
    assert pv["b"]["hr_label"] == pytest.approx(72.0, abs=tol)
    assert pv["a"]["hr_snr"] > 10.0 and pv["b"]["hr_snr"] < 0.0
    assert pv["a"]["num_frames"] == 1200
    # AUs: perfect where positives exist (AU01, AU10), 0 for the AUs that never occur.
    assert res["au_f1"]["AU01"] == 1.0 and res["au_f1"]["AU10"] == 1.0 and res["au_f1"]["AU02"] == 0.0
    assert res["au_f1_mean"] == pytest.approx(2 / 12)
    assert set(res["au_f1"]) == set(AU_NAMES)


def test_evaluate_videos_windows_and_missing_keys():
    only_hr = {"video_id": "x", "fps": 30.0, "bvp_pred": diff_normalize(sinusoid(80.0, 30.0, 60.0)),
               "bvp_label": diff_normalize(sinusoid(80.0, 30.0, 60.0))}
    unlabeled = {"video_id": "y", "fps": 30.0, "bvp_pred": diff_normalize(sinusoid(80.0, 30.0, 60.0))}
    res = metrics.evaluate_videos([only_hr, unlabeled], window_s=20.0)
    assert res["hr_n"] == 3  # three 20 s windows of the labeled video; the unlabeled one is not scored
    assert res["rr_n"] == 0 and res["rr_mae"] is None and "au_f1_mean" not in res
    assert len(res["per_video"][0]["hr_pred"]) == 3
    assert "hr_label" not in res["per_video"][1] and len(res["per_video"][1]["hr_pred"]) == 3
    json.dumps(res, allow_nan=False)


def test_evaluate_videos_bad_input_names_the_video():
    bad = video_entry("bad_one", 30.0, 72.0, 72.0, 15.0, 15.0, au=False)
    bad["bvp_pred"] = bad["bvp_pred"].copy()
    bad["bvp_pred"][5] = np.nan
    with pytest.raises(UserError, match="video bad_one: bvp_pred"):
        metrics.evaluate_videos([bad])
    short = video_entry("short", 30.0, 72.0, 72.0, 15.0, 15.0, au=False)
    short["bvp_label"] = short["bvp_label"][:-3]
    with pytest.raises(UserError, match="video short:.*samples"):
        metrics.evaluate_videos([short])
    no_fps = video_entry("nofps", 30.0, 72.0, 72.0, 15.0, 15.0, au=False)
    del no_fps["fps"]
    with pytest.raises(UserError, match="video nofps: no sampling rate"):
        metrics.evaluate_videos([no_fps])
