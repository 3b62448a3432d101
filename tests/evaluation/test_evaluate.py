"""`python -m bigsmall_jax.evaluate` and `evaluate_split`, against an independent plain path, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_checks import expect_nothing_changed, expect_one_error_line

from bigsmall_jax.checkpoints import load_checkpoint, save_checkpoint
from bigsmall_jax.checkpoints.torch_import import convert_file
from bigsmall_jax.datasets import tfds_builders
from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.evaluate import main as evaluate_main
from bigsmall_jax.evaluation import metrics
from bigsmall_jax.evaluation.evaluate import evaluate_split, format_table, predict_videos
from bigsmall_jax.evaluation.plots import plot_au_f1

DATA = Path(__file__).parents[1] / "data"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    config, variables = convert_file(DATA / "bigsmall_random_init.pth")
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "bigsmall", config, variables)


def _plain_predictions(model, variables, source) -> list[dict]:
    """Independent of `iter_videos` and of batching: every record read by index, grouped by video and sorted
    by chunk index, each whole video (stored padding included) through the model in one pass, then the
    padded frames dropped."""
    records: dict[str, list] = {}
    for i in range(len(source)):
        r = source[i]
        vid = r["video_id"].decode() if isinstance(r["video_id"], bytes) else str(r["video_id"])
        records.setdefault(vid, []).append(r)
    out = []
    for vid, clips in records.items():
        clips.sort(key=lambda c: int(c["chunk_index"]))
        assert [int(c["chunk_index"]) for c in clips] == list(range(int(clips[0]["num_chunks"])))
        cat = {k: np.concatenate([np.asarray(c[k]) for c in clips]) for k in ("big", "small", "frame_mask", "bvp",
                                                                                "resp", "au")}
        mean, std = float(clips[0]["big_mean"]), float(clips[0]["big_std"])
        big = (cat["big"].astype(np.float32) - np.float32(mean)) / np.float32(std)
        pred = model.apply(variables, big, cat["small"].astype(np.float32))
        keep = cat["frame_mask"].astype(bool)
        out.append({
            "video_id": vid, "fps": float(clips[0]["fps"]),
            "bvp_pred": np.asarray(pred["bvp"])[keep, 0], "bvp_label": cat["bvp"][keep],
            "resp_pred": np.asarray(pred["resp"])[keep, 0], "resp_label": cat["resp"][keep],
            "au_logits": np.asarray(pred["au"])[keep], "au_label": cat["au"][keep],
        })
    return out


def _assert_same_metrics(got: dict, want: dict) -> None:
    # Rates are FFT bins (exact); SNRs are continuous in the waves, whose float32 rounding depends on the batch
    # size (relative differences of ~1e-6 seen): rel=1e-4.
    for key, value in want.items():
        if key == "per_video":
            continue
        if isinstance(value, dict):
            assert set(got[key]) == set(value), key
            for k, v in value.items():
                assert got[key][k] == pytest.approx(v, rel=1e-4, abs=1e-9, nan_ok=True), (key, k)
        elif isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-9), key
        else:
            assert got[key] == value, key
    assert [v["video_id"] for v in got["per_video"]] == [v["video_id"] for v in want["per_video"]]
    for g, w in zip(got["per_video"], want["per_video"], strict=True):
        for key in ("hr_pred", "hr_label", "rr_pred", "rr_label", "au_f1_mean", "num_frames"):
            assert (g[key] is None) if w[key] is None else g[key] == pytest.approx(w[key], rel=1e-4), key


def test_evaluate_cli_matches_plain_path(tiny_synthetic_dataset, ckpt, tmp_path, capsys):
    data_dir, builder = tiny_synthetic_dataset
    out = tmp_path / "res" / "test.json"
    out.parent.mkdir()
    evaluate_main(["--checkpoint", str(ckpt), "--dataset", "synthetic", "--data-dir", str(data_dir),
                   "--config", builder.builder_config.name, "--split", "test", "--output", str(out),
                   "--batch-clips", "4"])
    table = capsys.readouterr().out
    got = json.loads(out.read_text())

    model, variables = load_checkpoint(ckpt)
    source = tfds_builders.data_source(builder, "test")
    plain = _plain_predictions(model, variables, source)
    want = metrics.evaluate_videos(plain)
    assert want["num_videos"] >= 1 and want["hr_n"] == want["rr_n"] == want["num_videos"]
    _assert_same_metrics(got, want)
    assert got["split"] == "test" and got["dataset"] == "bigsmall_synthetic"
    assert set(got["au_f1"]) == set(AU_NAMES)
    for word in ("HR", "RR", "MAE", "SNR", *AU_NAMES, "mean"):
        assert word in table
    expected_plots = {f"test_{p}.png" for p in ("hr_bland_altman", "rr_bland_altman", "au_f1", "waves_hr",
                                                "waves_rr", "au_activations")}
    assert set(got["plots"]) == expected_plots
    assert {p.name for p in out.parent.iterdir()} == expected_plots | {"test.json"}  # no temp folder left
    for name in expected_plots:
        assert (out.parent / name).read_bytes()[:8] == PNG_MAGIC


def test_evaluate_split_predictions(tiny_synthetic_dataset, ckpt):
    _, builder = tiny_synthetic_dataset
    model, variables = load_checkpoint(ckpt)
    source = tfds_builders.data_source(builder, "validation")
    results, predictions = evaluate_split(model, variables, source, batch_clips=2)
    n_frames = builder.builder_config.synthetic["duration_s"] * builder.builder_config.synthetic["fps"]
    assert len(predictions) == results["num_videos"] == len({p["video_id"] for p in predictions})
    for p in predictions:
        assert p["num_frames"] == n_frames == 50 and p["n_padded_frames"] == 1  # stored padding dropped, re-added
        assert p["bvp_pred"].shape == p["bvp_label"].shape == p["resp_pred"].shape == (50,)
        assert p["au_logits"].shape == p["au_label"].shape == (50, 12)
    # Scoring the returned predictions again gives the returned metrics, by either rate method.
    _assert_same_metrics(results, metrics.evaluate_videos(predictions))
    peak, _ = evaluate_split(model, variables, source, batch_clips=2, method="peak")
    assert results["method"] == "fft" and peak["method"] == "peak"
    _assert_same_metrics(peak, metrics.evaluate_videos(predictions, method="peak"))
    # The predictions equal the plain path's: whole videos in one pass, stored padding dropped.
    plain = _plain_predictions(model, variables, source)
    assert [p["video_id"] for p in predictions] == [p["video_id"] for p in plain]
    for p, q in zip(predictions, plain, strict=True):
        for key in ("bvp_pred", "resp_pred", "au_logits"):
            np.testing.assert_allclose(p[key], q[key], atol=1e-4, rtol=1e-4)
        for key in ("bvp_label", "resp_label", "au_label"):
            np.testing.assert_array_equal(p[key], q[key])


def test_pathway_checkpoint_scores_only_its_task(tiny_synthetic_dataset, tmp_path, capsys):
    data_dir, builder = tiny_synthetic_dataset
    out = tmp_path / "heart.json"
    evaluate_main(["--checkpoint", str(DATA / "BP4D_Small_Heart_Clip3_Split1_Epoch4.pth"), "--dataset",
                   "synthetic", "--data-dir", str(data_dir), "--config", builder.builder_config.name,
                   "--output", str(out)])
    got = json.loads(out.read_text())
    assert got["hr_n"] == got["num_videos"] and got["rr_n"] == 0 and "au_f1" not in got
    assert set(got["plots"]) == {"heart_hr_bland_altman.png", "heart_waves_hr.png"}
    assert "AU01" not in capsys.readouterr().out


def test_predict_videos_keeps_only_known_labels(ckpt):
    model, variables = load_checkpoint(ckpt)
    rng = np.random.default_rng(0)
    t = 7
    big = rng.normal(size=(t, 144, 144, 3)).astype(np.float32)
    small = rng.normal(size=(t, 9, 9, 3)).astype(np.float32)
    labels = {"bvp": rng.normal(size=t), "resp": np.full(t, np.nan), "au": np.full((t, 12), np.nan)}
    (p,) = predict_videos(model, variables, [("v", big, small, labels, 30.0)], batch_clips=1)
    assert set(p) == {"video_id", "fps", "num_frames", "n_padded_frames", "bvp_pred", "bvp_label", "resp_pred",
                      "au_logits"}
    assert p["n_padded_frames"] == 2 and p["num_frames"] == 7 and p["au_logits"].shape == (7, 12)


def test_format_table_and_au_plot(tmp_path):
    results = {
        "num_videos": 3, "window_s": None, "hr_n": 3, "hr_mae": 1.5, "hr_mae_se": 0.25, "hr_rmse": 2.0,
        "hr_rmse_se": 0.5, "hr_mape": 2.5, "hr_mape_se": 0.1, "hr_pearson": None, "hr_pearson_se": None,
        "hr_snr": -3.0, "hr_snr_se": 1.0, "rr_n": 0,
        "au_f1": {a: 0.5 for a in AU_NAMES}, "au_precision": {a: 0.25 for a in AU_NAMES},
        "au_recall": {a: 1.0 for a in AU_NAMES}, "au_accuracy": {a: None for a in AU_NAMES},
        "au_f1_mean": 0.5, "au_precision_mean": 0.25, "au_recall_mean": 1.0, "au_accuracy_mean": None,
    }
    table = format_table(results)
    hr_line = next(line for line in table.splitlines() if line.startswith("HR"))
    assert "1.50 ± 0.25" in hr_line and "2.00 ± 0.50" in hr_line and "-3.00 ± 1.00" in hr_line
    assert "n/a" in hr_line  # Pearson undefined
    assert not any(line.startswith("RR") for line in table.splitlines())  # nothing scored
    assert sum(line.startswith("AU") for line in table.splitlines()) == 1 + len(AU_NAMES)  # header + rows
    assert plot_au_f1(results, tmp_path / "f1.png").read_bytes()[:8] == PNG_MAGIC


# ------------------------------------------------------------------------------------------------- bad input


def _expect_user_error(capsys, tmp_path, argv, *needles):
    out = tmp_path / "out" / "res.json"
    out.parent.mkdir(exist_ok=True)
    expect_one_error_line(capsys, evaluate_main, [*argv, "--output", out], out.parent, *needles)


def test_bad_input(tiny_synthetic_dataset, ckpt, tmp_path, capsys):
    data_dir, builder = tiny_synthetic_dataset
    base = ["--checkpoint", ckpt, "--data-dir", data_dir]
    _expect_user_error(capsys, tmp_path, [*base, "--dataset", "nosuch"], "unknown dataset 'nosuch'", "synthetic")
    _expect_user_error(capsys, tmp_path, [*base, "--dataset", "pure"], "bigsmall_pure", "prepare")
    _expect_user_error(capsys, tmp_path, [*base, "--dataset", "synthetic", "--config", "fold9"], "fold9",
                       builder.builder_config.name)
    _expect_user_error(capsys, tmp_path, [*base, "--dataset", "synthetic", "--split", "trian"], "trian", "train")
    not_ckpt = tmp_path / "empty_dir"
    not_ckpt.mkdir()
    _expect_user_error(capsys, tmp_path, ["--checkpoint", not_ckpt, "--data-dir", data_dir, "--dataset",
                                          "synthetic"], "empty_dir", "not a bigsmall-jax checkpoint")
    _expect_user_error(capsys, tmp_path, ["--checkpoint", tmp_path / "gone", "--data-dir", data_dir, "--dataset",
                                          "synthetic"], "gone", "no such")


def test_outputs_inside_an_input_are_refused(tiny_synthetic_dataset, ckpt, tmp_path, capsys):
    # Neither the checkpoint (its config) nor the data directory is written into.
    data_dir, _ = tiny_synthetic_dataset
    base = ["--checkpoint", ckpt, "--data-dir", data_dir, "--dataset", "synthetic"]
    expect_nothing_changed(capsys, evaluate_main, [*base, "--output", ckpt / "bigsmall_config.json"], ckpt.parent,
                           "bigsmall_config.json", "--output lies inside the input")
    expect_nothing_changed(capsys, evaluate_main, [*base, "--output", Path(data_dir) / "res.json"], Path(data_dir),
                           "res.json", "--output lies inside the input")


def test_unwritable_output_is_refused_before_any_work(ckpt, tmp_path, capsys):
    base = ["--checkpoint", ckpt, "--data-dir", tmp_path / "no_data", "--dataset", "synthetic"]
    expect_nothing_changed(capsys, evaluate_main, [*base, "--output", "/proc/res.json"], tmp_path,
                           "/proc/res.json", "cannot write into the folder of --output")
    (tmp_path / "file").write_text("x")
    expect_nothing_changed(capsys, evaluate_main, [*base, "--output", tmp_path / "file" / "res.json"], tmp_path,
                           "res.json", "does not exist")
