"""Tests of bigsmall_jax.evaluation.plots: every plot writes a PNG atomically, with ordinary permissions."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from rate_waves import diff_normalize, sinusoid, video_entry

from bigsmall_jax.errors import UserError
from bigsmall_jax.evaluation import plots

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
    v = video_entry("a", fs, 72.0, 72.0, 15.0, 15.0, seconds=8.0)
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
