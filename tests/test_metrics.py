"""Tests of bigsmall_jax.evaluation.metrics and .plots against closed-form cases and hand-computed numbers."""

from __future__ import annotations

import json
import math
import time

import imageio.v3 as iio
import numpy as np
import pytest

from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.errors import UserError
from bigsmall_jax.evaluation import metrics, plots


def sinusoid(rate_per_min: float, fs: float, seconds: float, phase: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(fs * seconds))) / fs
    return np.sin(2 * np.pi * rate_per_min / 60.0 * t + phase)


def diff_normalize(wave: np.ndarray) -> np.ndarray:
    """Label diff-normalization of the reference recipe: np.diff, / std, a 0 appended."""
    d = np.diff(wave)
    return np.append(d / np.std(d), 0.0)


def fft_bin_per_min(num_samples: int, fs: float) -> float:
    nfft = 1 << (num_samples - 1).bit_length()
    return 60.0 * fs / nfft


# ------------------------------------------------------------------------------------------------
# Detrending
# ------------------------------------------------------------------------------------------------


def test_detrend_dense_is_the_textbook_formula_on_a_tiny_case():
    # N = 4, lambda = 1: D2 = [[1,-2,1,0],[0,1,-2,1]] written out by hand.
    d2 = np.array([[1.0, -2.0, 1.0, 0.0], [0.0, 1.0, -2.0, 1.0]])
    x = np.array([1.0, -2.0, 0.5, 3.0])
    expected = x - np.linalg.solve(np.eye(4) + d2.T @ d2, x)
    np.testing.assert_allclose(metrics.detrend_dense(x, lam=1.0), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(metrics.detrend(x, lam=1.0), expected, rtol=0, atol=1e-12)


def test_detrend_linear_time_equals_dense_on_long_signal():
    rng = np.random.default_rng(0)
    n = 2000
    x = np.cumsum(rng.standard_normal(n)) + 3.0 * rng.standard_normal(n) + np.linspace(0, 50, n)
    fast = metrics.detrend(x, lam=100.0)
    dense = metrics.detrend_dense(x, lam=100.0)
    np.testing.assert_allclose(fast, dense, rtol=0, atol=1e-8)
    # Another lambda, short odd lengths: the band structure must hold at the edges too.
    for m in (3, 4, 5, 11):
        np.testing.assert_allclose(metrics.detrend(x[:m], 7.0), metrics.detrend_dense(x[:m], 7.0), atol=1e-10)


def test_detrend_removes_linear_trend_and_keeps_fast_oscillation():
    n = 3000
    t = np.arange(n, dtype=np.float64)
    np.testing.assert_allclose(metrics.detrend(5.0 - 0.02 * t), 0.0, atol=1e-8)
    # A 2 Hz wave at 30 fps is far above the smoother's cut-off (~0.5 Hz at lambda 100): kept intact
    # away from the edges, while the added ramp disappears.
    wave = np.sin(2 * np.pi * 2.0 / 30.0 * t)
    out = metrics.detrend(wave + 0.01 * t)
    np.testing.assert_allclose(out[200:-200], wave[200:-200], atol=1e-2)


def test_detrend_timing_10_minutes_at_30fps():
    x = np.random.default_rng(1).standard_normal(18000)
    start = time.perf_counter()
    out = metrics.detrend(x)
    elapsed = time.perf_counter() - start
    print(f"\ndetrend of 18,000 samples (10 min at 30 fps): {elapsed * 1e3:.2f} ms")
    assert out.shape == x.shape and np.all(np.isfinite(out))


# ------------------------------------------------------------------------------------------------
# Rates
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fs", [25.0, 30.0])
@pytest.mark.parametrize("bpm", [48.0, 66.0, 87.0, 114.0, 141.0])
def test_rate_of_pure_sinusoid(fs, bpm):
    wave = sinusoid(bpm, fs, 60.0)
    tol = fft_bin_per_min(wave.shape[0], fs)
    assert abs(metrics.rate_fft(wave, fs, 0.75, 2.5) - bpm) <= tol
    assert abs(metrics.rate_peaks(wave, fs) - bpm) <= 1.0
    # Raw sinusoid through the whole protocol (detrend + band-pass).
    assert abs(metrics.wave_to_rate(wave, fs, "hr", diff_normalized=False) - bpm) <= tol
    # Diff-normalized sinusoid: goes through the cumsum path.
    dn = diff_normalize(wave)
    assert abs(metrics.wave_to_rate(dn, fs, "hr", diff_normalized=True) - bpm) <= tol
    assert abs(metrics.wave_to_rate(dn, fs, "hr", diff_normalized=True, method="peak") - bpm) <= 1.0


@pytest.mark.parametrize("fs", [25.0, 30.0])
@pytest.mark.parametrize("brpm", [9.0, 15.0, 24.0])
def test_respiration_rate_of_diff_normalized_sinusoid(fs, brpm):
    dn = diff_normalize(sinusoid(brpm, fs, 60.0))
    tol = fft_bin_per_min(dn.shape[0], fs)
    assert abs(metrics.wave_to_rate(dn, fs, "rr") - brpm) <= tol
    assert abs(metrics.wave_to_rate(dn, fs, "rr", method="peak") - brpm) <= 1.0


def test_diff_normalized_flag_integrates_first():
    # wave = sin(60/min) + 0.6 sin(140/min). Its derivative weights each tone by its frequency:
    # 60 vs 0.6 * 140 = 84, so the diff-normalized wave peaks at 140 unless it is integrated first.
    fs = 30.0
    wave = sinusoid(60.0, fs, 60.0) + 0.6 * sinusoid(140.0, fs, 60.0, phase=1.1)
    dn = diff_normalize(wave)
    tol = fft_bin_per_min(dn.shape[0], fs)
    assert abs(metrics.wave_to_rate(dn, fs, "hr", diff_normalized=True) - 60.0) <= tol
    assert abs(metrics.wave_to_rate(dn, fs, "hr", diff_normalized=False) - 140.0) <= tol


def test_rate_peaks_with_too_few_peaks_is_nan():
    assert math.isnan(metrics.rate_peaks(np.linspace(0, 1, 50), 30.0))


def test_bad_waves_raise_user_error():
    with pytest.raises(UserError, match="NaN"):
        metrics.wave_to_rate(np.array([0.0, np.nan] * 20), 30.0)
    with pytest.raises(UserError, match="at least"):
        metrics.wave_to_rate(np.zeros(5), 30.0)
    with pytest.raises(UserError, match="kind"):
        metrics.wave_to_rate(np.zeros(100), 30.0, kind="bp")
    with pytest.raises(UserError, match="method"):
        metrics.wave_to_rate(np.zeros(100), 30.0, method="music")


# ------------------------------------------------------------------------------------------------
# SNR
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fs", [25.0, 30.0])
def test_snr_clean_sinusoid_high_noise_low(fs):
    bpm = 78.0
    wave = sinusoid(bpm, fs, 60.0)
    assert metrics.snr_db(wave, bpm, fs, "hr", diff_normalized=False) > 10.0
    assert metrics.snr_db(diff_normalize(wave), bpm, fs, "hr") > 10.0
    # The same clean wave scored against a wrong label rate (and its harmonic) is poor.
    assert metrics.snr_db(wave, 130.0, fs, "hr", diff_normalized=False) < 0.0
    rng = np.random.default_rng(7)
    noise = [metrics.snr_db(rng.standard_normal(wave.shape[0]), bpm, fs, "hr") for _ in range(5)]
    assert max(noise) < 0.0


def test_snr_is_ten_log10_of_power_ratio():
    # Two tones of equal amplitude, one at the label rate and one in the rest of the band, each
    # exactly on an FFT bin with an integer number of cycles: equal powers -> 0 dB, amplitude
    # ratio 2 -> power ratio 4 -> 10 log10(4) = 6.02 dB.
    fs, n = 32.0, 1024  # nfft = n: bins of 1/32 Hz, 1.875 per minute
    t = np.arange(n) / fs
    f_sig, f_noise = 40 / 32, 64 / 32  # 75 and 120 per minute
    for amp, expected in ((1.0, 0.0), (2.0, 10 * math.log10(4))):
        wave = amp * np.sin(2 * np.pi * f_sig * t) + np.sin(2 * np.pi * f_noise * t)
        snr = metrics.snr_db(wave, 75.0, fs, "hr", process=False)
        assert snr == pytest.approx(expected, abs=1e-6)


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


def _video(vid, fs, hr_pred, hr_label, rr_pred, rr_label, seconds=40.0, au=True):
    v = {
        "video_id": vid, "fps": fs,
        "bvp_pred": diff_normalize(sinusoid(hr_pred, fs, seconds)),
        "bvp_label": diff_normalize(sinusoid(hr_label, fs, seconds, phase=1.0)),
        "resp_pred": diff_normalize(sinusoid(rr_pred, fs, seconds))[:, None],  # (T, 1) like the model
        "resp_label": diff_normalize(sinusoid(rr_label, fs, seconds, phase=2.0)),
    }
    if au:
        n = v["bvp_pred"].shape[0]
        labels = np.zeros((n, 12))
        labels[: n // 2, 0] = 1.0
        labels[n // 3 :, 5] = 1.0
        labels[:10, 7] = np.nan
        v["au_label"] = labels
        v["au_logits"] = np.where(labels == 1.0, 3.0, -3.0)  # perfect on labeled frames
    return v


def test_evaluate_videos_end_to_end():
    videos = [
        _video("a", 30.0, 72.0, 72.0, 15.0, 15.0),
        _video("b", 25.0, 90.0, 72.0, 12.0, 18.0),
        _video("c", 30.0, 100.0, 110.0, 20.0, 20.0),
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
    bad = _video("bad_one", 30.0, 72.0, 72.0, 15.0, 15.0, au=False)
    bad["bvp_pred"] = bad["bvp_pred"].copy()
    bad["bvp_pred"][5] = np.nan
    with pytest.raises(UserError, match="video bad_one: bvp_pred"):
        metrics.evaluate_videos([bad])
    short = _video("short", 30.0, 72.0, 72.0, 15.0, 15.0, au=False)
    short["bvp_label"] = short["bvp_label"][:-3]
    with pytest.raises(UserError, match="video short:.*samples"):
        metrics.evaluate_videos([short])
    no_fps = _video("nofps", 30.0, 72.0, 72.0, 15.0, 15.0, au=False)
    del no_fps["fps"]
    with pytest.raises(UserError, match="video nofps: no sampling rate"):
        metrics.evaluate_videos([no_fps])


# ------------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------------


def _assert_png(path):
    img = iio.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img.std() > 1.0  # something was drawn


def test_plots_write_pngs_atomically(tmp_path):
    rng = np.random.default_rng(0)
    label = rng.uniform(55, 110, 30)
    pred = label + rng.normal(0, 4, 30)
    plots.bland_altman(pred, label, tmp_path / "ba.png", "HR", "bpm")
    plots.scatter_rates(pred, label, tmp_path / "sc.png", "HR", "bpm")
    fs = 25.0
    plots.plot_waves(diff_normalize(sinusoid(75, fs, 20)), diff_normalize(sinusoid(78, fs, 20)), fs,
                     tmp_path / "wave.png", "pulse", kind="hr")
    v = _video("a", fs, 72.0, 72.0, 15.0, 15.0, seconds=8.0)
    plots.plot_au_activations(v["au_logits"], v["au_label"], tmp_path / "au.png", fs=fs)
    records = [{"step": s, "train_loss": 1.0 / (s + 1), "lr": 1e-3} for s in range(50)]
    records += [{"step": 49, "val_loss": 0.05, "val_hr_mae": 3.2}]
    plots.plot_loss_curves(records, tmp_path / "loss.png")
    csv_path = tmp_path / "log.csv"
    csv_path.write_text("epoch,train_loss,val_loss\n0,1.0,1.2\n1,0.5,\n2,0.25,0.4\n")
    plots.plot_loss_curves(csv_path, tmp_path / "loss_csv.png")
    (tmp_path / "plain").touch()  # a file created the ordinary way: PNGs must get its permissions
    mode = (tmp_path / "plain").stat().st_mode
    (tmp_path / "plain").unlink()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert all((tmp_path / n).stat().st_mode == mode for n in names)
    assert names == ["au.png", "ba.png", "log.csv", "loss.png", "loss_csv.png", "sc.png", "wave.png"]
    for name in names:
        if name.endswith(".png"):
            _assert_png(tmp_path / name)


def test_plot_failure_leaves_existing_file_and_no_temp(tmp_path):
    target = tmp_path / "ba.png"
    target.write_bytes(b"old")
    with pytest.raises(UserError):
        plots.bland_altman([1.0, 2.0], [1.0], target, "HR", "bpm")
    assert target.read_bytes() == b"old"
    with pytest.raises(UserError, match="does not exist"):
        plots.scatter_rates([1.0, 2.0], [1.0, 2.5], tmp_path / "nope" / "x.png")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("step,note\n1,hello\n")
    with pytest.raises(UserError, match="bad.csv: no numeric column"):
        plots.plot_loss_curves(bad_csv, tmp_path / "loss.png")
    with pytest.raises(UserError, match="missing.csv"):
        plots.plot_loss_curves(tmp_path / "missing.csv", tmp_path / "loss.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ba.png", "bad.csv"]
