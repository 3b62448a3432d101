"""Dataset readers: tiny fixtures in each layout written to tmp_path and read back."""

from __future__ import annotations

import json

import imageio
import numpy as np
import pytest
import scipy.io as sio

from bigsmall_jax.datasets import readers as ds
from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.datasets.video_io import write_video
from bigsmall_jax.errors import UserError

T, H, W = 6, 8, 10


def _frames(t=T, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, H, W, 3), dtype=np.uint8)


# -------------------------------------------------------------------------------------------------- registry


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(UserError, match=r"unknown dataset 'bp4d'; valid: bp4d_plus, generic, pure, ubfc_rppg"):
        ds.get_reader("bp4d")
    with pytest.raises(UserError, match="unknown dataset"):
        list(ds.iter_recordings("nope", tmp_path))


def test_missing_root_is_user_error(tmp_path):
    for name in ("bp4d_plus", "ubfc_rppg", "pure"):
        with pytest.raises(UserError, match=r"missing: dataset root is not a folder"):
            ds.list_subjects(name, tmp_path / "missing")


# ---------------------------------------------------------------------------------------------------- BP4D+


def _bp4d_mat(path, frames, **overrides):
    t = frames.shape[0]
    n = np.arange(t, dtype=np.float64)
    content = {
        "X": frames,
        "bp_wave": (80 + 10 * np.sin(n))[None, :],  # MATLAB row vectors (1, T)
        "HR_bpm": np.full((t, 1), 72.0),
        "resp_wave": np.cos(n)[:, None],
        "resp_bpm": np.full((1, t), 15.0),
        "pos_bvp": n * 0.5,
        "pos_env_norm_bvp": n * -0.25,
    }
    for i, name in enumerate(AU_NAMES):
        codes = (n.astype(int) + i) % 2
        content[name] = codes.astype(np.float64)
    content["AU01"] = np.array([0, 1, 9, 1, 0, 9], np.float64)[:t]  # 9: unknown
    content["AU05"] = np.ones(t)  # not one of the 12: ignored
    content.update(overrides)
    content = {k: v for k, v in content.items() if v is not None}
    sio.savemat(path, content)


def test_bp4d_plus_reads_labels_and_frames(tmp_path):
    frames = _frames()
    _bp4d_mat(tmp_path / "F001_T1.mat", frames)
    _bp4d_mat(tmp_path / "M012_T10.mat", _frames(seed=1))
    assert ds.list_subjects("bp4d_plus", tmp_path) == ["F001", "M012"]
    recs = list(ds.iter_recordings("bp4d_plus", tmp_path))
    assert [r.name for r in recs] == ["F001_T1", "M012_T10"]
    rec = recs[0]
    n = np.arange(T)
    assert rec.subject == "F001" and rec.fps == 25.0 and rec.source.endswith("F001_T1.mat")
    np.testing.assert_array_equal(rec.frames, frames)
    np.testing.assert_allclose(rec.bvp, 80 + 10 * np.sin(n))
    np.testing.assert_allclose(rec.resp, np.cos(n))
    np.testing.assert_array_equal(rec.hr_bpm, np.full(T, 72.0))
    np.testing.assert_array_equal(rec.rr_bpm, np.full(T, 15.0))
    np.testing.assert_allclose(rec.extra["pos_bvp"], n * 0.5)
    np.testing.assert_allclose(rec.extra["pos_env_norm_bvp"], n * -0.25)
    assert rec.au.shape == (T, 12) and rec.au.dtype == np.float32
    np.testing.assert_array_equal(rec.au[:, 0], [0, 1, np.nan, 1, 0, np.nan])
    for i in range(1, 12):
        np.testing.assert_array_equal(rec.au[:, i], (n + i) % 2)
    assert [r.name for r in ds.iter_recordings("bp4d_plus", tmp_path, subjects=["M012"])] == ["M012_T10"]


@pytest.mark.parametrize("layout", ["thwc_float01", "thwc_float255", "tchw", "hwct"])
def test_bp4d_plus_frame_layouts(tmp_path, layout):
    frames = _frames()
    x = {
        "thwc_float01": frames.astype(np.float32) / 255.0,
        "thwc_float255": frames.astype(np.float64),
        "tchw": np.transpose(frames, (0, 3, 1, 2)),
        "hwct": np.transpose(frames, (1, 2, 3, 0)),
    }[layout]
    _bp4d_mat(tmp_path / "F002_T3.mat", frames, X=x)
    (rec,) = ds.iter_recordings("bp4d_plus", tmp_path)
    np.testing.assert_array_equal(rec.frames, frames)


def test_bp4d_plus_missing_au_keys_become_nan(tmp_path):
    _bp4d_mat(tmp_path / "F003_T1.mat", _frames(), AU24=None)
    (rec,) = ds.iter_recordings("bp4d_plus", tmp_path)
    assert np.all(np.isnan(rec.au[:, 11])) and not np.any(np.isnan(rec.au[:, 1]))


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"resp_wave": np.zeros(T - 1)}, r"F004_T1\.mat: label 'resp_wave' has 5 values but the video has 6 frames"),
        ({"bp_wave": np.array([1, 2, np.nan, 4, 5, 6.0])}, r"F004_T1\.mat: label 'bp_wave' has NaN.*frame 2"),
        ({"X": None}, r"F004_T1\.mat: no frames 'X'"),
        ({"X": np.zeros((T, H, W), np.uint8)}, r"F004_T1\.mat: frames 'X' must be 4-D"),
        ({"X": np.full((T, H, W, 3), 300.0)}, r"F004_T1\.mat: float frames 'X' range"),
    ],
)
def test_bp4d_plus_bad_files(tmp_path, overrides, pattern):
    _bp4d_mat(tmp_path / "F004_T1.mat", _frames(), **overrides)
    with pytest.raises(UserError, match=pattern):
        list(ds.iter_recordings("bp4d_plus", tmp_path))


def test_bp4d_plus_corrupt_and_v73(tmp_path):
    (tmp_path / "F005_T1.mat").write_bytes(b"garbage" * 10)
    with pytest.raises(UserError, match=r"F005_T1\.mat: cannot read as a MATLAB file"):
        list(ds.iter_recordings("bp4d_plus", tmp_path))
    (tmp_path / "F005_T1.mat").unlink()
    header = b"MATLAB 7.3 MAT-file, HDF5 schema 1.00 .".ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM"
    (tmp_path / "F006_T1.mat").write_bytes(header + b"\0" * 512)
    try:
        import h5py  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match=r"F006_T1\.mat: MATLAB v7\.3"):
            list(ds.iter_recordings("bp4d_plus", tmp_path))


def test_bp4d_fold_subjects():
    folds = [ds.bp4d_fold_subjects(k) for k in (1, 2, 3)]
    assert folds[0]["test"][:2] == ["F006", "F028"]
    assert folds[2]["test"][:2] == ["F078", "M008"]
    everyone = set(folds[0]["train"]) | set(folds[0]["test"])
    for f in folds:
        assert not set(f["train"]) & set(f["test"])
        assert set(f["train"]) | set(f["test"]) == everyone
        assert len(f["test"]) in (46, 47)
    tests = [set(f["test"]) for f in folds]
    assert not (tests[0] & tests[1]) and not (tests[1] & tests[2]) and tests[0] | tests[1] | tests[2] == everyone
    with pytest.raises(UserError, match="fold must be 1, 2 or 3"):
        ds.bp4d_fold_subjects(4)


def test_bp4d_fold_subjects_bad_files(tmp_path):
    with pytest.raises(UserError, match=r"Split1_Train_Subjects\.csv: BP4D\+ split file not found"):
        ds.bp4d_fold_subjects(1, splits_dir=tmp_path)
    (tmp_path / "Split1_Train_Subjects.csv").write_text("subject\nF001\n")
    with pytest.raises(UserError, match="header line 'subjects'"):
        ds.bp4d_fold_subjects(1, splits_dir=tmp_path)


# ------------------------------------------------------------------------------------------------ UBFC-rPPG


def _ubfc_subject(root, name, frames, gt_rows=None, gtdump=None, fps=30.0):
    d = root / name
    d.mkdir(parents=True)
    write_video(d / "vid.avi", frames, fps, lossless=True)
    if gt_rows is not None:
        np.savetxt(d / "ground_truth.txt", np.asarray(gt_rows))
    if gtdump is not None:
        np.savetxt(d / "gtdump.xmp", np.asarray(gtdump), delimiter=",")


def test_ubfc_rppg_per_frame_ground_truth(tmp_path):
    frames = _frames()
    ppg = np.sin(np.arange(T))
    hr = 60 + np.arange(T, dtype=float)
    _ubfc_subject(tmp_path, "subject3", frames, gt_rows=[ppg, hr, np.arange(T) / 30.0])
    _ubfc_subject(tmp_path, "subject10", _frames(seed=2), gt_rows=[ppg, hr, np.arange(T) / 30.0])
    (tmp_path / "readme").mkdir()  # not a subject: no vid.avi
    assert ds.list_subjects("ubfc_rppg", tmp_path) == ["subject10", "subject3"]
    rec = list(ds.iter_recordings("ubfc_rppg", tmp_path, subjects={"subject3"}))[0]
    assert rec.name == rec.subject == "subject3" and rec.fps == pytest.approx(30.0)
    np.testing.assert_array_equal(rec.frames, frames)
    np.testing.assert_allclose(rec.bvp, ppg, rtol=1e-12)
    np.testing.assert_allclose(rec.hr_bpm, hr, rtol=1e-12)


def test_ubfc_rppg_resamples_by_timestamp(tmp_path):
    """PPG sampled at 60 Hz as a linear function of time: resampled at the 30 fps frame times exactly."""
    ts = 0.25 + np.arange(2 * T + 3) / 60.0  # starts at 0.25 s: times are taken relative to the first
    ppg = 3.0 * (ts - 0.25) + 1.0
    hr = np.full(ts.size, 75.0)
    _ubfc_subject(tmp_path, "subject1", _frames(), gt_rows=[ppg, hr, ts])
    (rec,) = ds.iter_recordings("ubfc_rppg", tmp_path)
    np.testing.assert_allclose(rec.bvp, 3.0 * np.arange(T) / 30.0 + 1.0, atol=1e-9)
    np.testing.assert_allclose(rec.hr_bpm, 75.0)


def test_ubfc_rppg_dataset1_layout(tmp_path):
    ts_ms = np.arange(2 * T) * 1000 / 60.0
    gtdump = np.stack([ts_ms, np.full(2 * T, 70.0), np.full(2 * T, 98.0), ts_ms / 1000.0 * 2.0], axis=1)
    _ubfc_subject(tmp_path, "s1", _frames(), gtdump=gtdump)
    (rec,) = ds.iter_recordings("ubfc_rppg", tmp_path)
    np.testing.assert_allclose(rec.bvp, 2.0 * np.arange(T) / 30.0, atol=1e-9)
    np.testing.assert_allclose(rec.hr_bpm, 70.0)


def test_ubfc_rppg_bad_ground_truth(tmp_path):
    _ubfc_subject(tmp_path, "subject1", _frames(), gt_rows=[np.zeros(T), np.zeros(T)])
    with pytest.raises(UserError, match=r"ground_truth\.txt: expected 3 rows"):
        list(ds.iter_recordings("ubfc_rppg", tmp_path))
    (tmp_path / "subject1" / "ground_truth.txt").unlink()
    with pytest.raises(UserError, match=r"subject1: no ground_truth\.txt"):
        list(ds.iter_recordings("ubfc_rppg", tmp_path))
    np.savetxt(tmp_path / "subject1" / "ground_truth.txt", [[0, np.nan, 0, 1], [70] * 4, [0, 0.1, 0.2, 0.3]])
    with pytest.raises(UserError, match=r"ground_truth\.txt: label 'PPG' has NaN"):
        list(ds.iter_recordings("ubfc_rppg", tmp_path))


# ----------------------------------------------------------------------------------------------------- PURE


def _pure_session(root, name, frames, t0_ns=1_392_643_993_642_815_000, frame_ns=33_333_333, image_entries=True):
    session = root / name
    (session / name).mkdir(parents=True)
    frame_ts = [t0_ns + i * frame_ns for i in range(frames.shape[0])]
    for ts, f in zip(frame_ts, frames, strict=True):
        imageio.v3.imwrite(session / name / f"Image{ts}.png", f)
    # Pulse oximeter at 60 Hz, starting 0.1 s before the first frame; waveform linear in time.
    pkg_ts = [t0_ns - 100_000_000 + i * 16_666_667 for i in range(2 * frames.shape[0] + 12)]
    full = [{"Timestamp": ts, "Value": {"waveform": 100 + 6e-8 * (ts - t0_ns), "pulseRate": 66,
                                        "o2saturation": 97, "signalStrength": 4}} for ts in pkg_ts]
    meta = {"/FullPackage": full, "/Image": [{"Timestamp": ts} for ts in frame_ts] if image_entries else []}
    (session / f"{name}.json").write_text(json.dumps(meta))
    return np.array(frame_ts)


@pytest.mark.parametrize("image_entries", [True, False])
def test_pure(tmp_path, image_entries):
    frames = _frames()
    frame_ts = _pure_session(tmp_path, "01-02", frames, image_entries=image_entries)
    _pure_session(tmp_path, "07-01", _frames(seed=3))
    assert ds.list_subjects("pure", tmp_path) == ["01", "07"]
    (rec,) = ds.iter_recordings("pure", tmp_path, subjects=["01"])
    assert rec.name == "01-02" and rec.subject == "01"
    assert rec.fps == pytest.approx(30.0, rel=1e-6)
    np.testing.assert_array_equal(rec.frames, frames)
    np.testing.assert_allclose(rec.bvp, 100 + 6e-8 * (frame_ts - frame_ts[0]), atol=1e-6)
    np.testing.assert_allclose(rec.hr_bpm, 66.0)


def test_pure_bad_json(tmp_path):
    _pure_session(tmp_path, "01-01", _frames())
    (tmp_path / "01-01" / "01-01.json").write_text("{not json")
    with pytest.raises(UserError, match=r"01-01\.json: not valid JSON"):
        list(ds.iter_recordings("pure", tmp_path))
    (tmp_path / "01-01" / "01-01.json").write_text(json.dumps({"/Image": []}))
    with pytest.raises(UserError, match=r"01-01\.json: unexpected PURE JSON layout"):
        list(ds.iter_recordings("pure", tmp_path))


# -------------------------------------------------------------------------------------------------- generic


def _write_csv(path, columns: dict, rows: int):
    names = list(columns)
    lines = [",".join(names)]
    for i in range(rows):
        lines.append(",".join("" if np.isnan(columns[c][i]) else repr(float(columns[c][i])) for c in names))
    path.write_text("\n".join(lines) + "\n")


def _synthetic_style_columns(t, fps=30.0):
    n = np.arange(t, dtype=float)
    cols = {"frame": n, "time_s": n / fps, "bvp": np.sin(n), "resp": np.cos(n / 3), "hr_bpm": 60 + n,
            "rr_bpm": 12 + 0 * n}
    for i, name in enumerate(AU_NAMES):
        cols[name] = (n + i) % 2
    return cols


def test_generic_reads_synthetic_layout(tmp_path):
    frames = _frames()
    write_video(tmp_path / "synth_000.mp4", frames, 30.0, lossless=True)
    cols = _synthetic_style_columns(T)
    cols["AU04"] = np.array([0, 1, np.nan, 1, 0, 9.0])  # empty cell and code 9: missing
    cols["AU05"] = np.ones(T)  # outside AU_NAMES: ignored
    cols["pos_env_norm_bvp"] = np.arange(T) * 2.0  # other columns: extra waves
    cols.update(face_x=np.full(T, 1.0), face_y=np.full(T, 2.0), face_w=np.full(T, 5.0), face_h=np.full(T, 4.0))
    _write_csv(tmp_path / "synth_000.csv", cols, T)
    assert ds.list_subjects("generic", tmp_path) == ["synth_000"]
    (rec,) = ds.iter_recordings("generic", tmp_path)
    assert rec.name == rec.subject == "synth_000" and rec.fps == pytest.approx(30.0)
    np.testing.assert_array_equal(rec.frames, frames)
    np.testing.assert_allclose(rec.bvp, np.sin(np.arange(T)), rtol=1e-12)
    np.testing.assert_allclose(rec.resp, np.cos(np.arange(T) / 3), rtol=1e-12)
    np.testing.assert_array_equal(rec.hr_bpm, 60 + np.arange(T))
    np.testing.assert_array_equal(rec.rr_bpm, np.full(T, 12.0))
    np.testing.assert_array_equal(rec.au[:, 2], [0, 1, np.nan, 1, 0, np.nan])
    np.testing.assert_array_equal(rec.au[:, 0], np.arange(T) % 2)
    assert set(rec.extra) == {"pos_env_norm_bvp"}
    np.testing.assert_array_equal(rec.extra["pos_env_norm_bvp"], np.arange(T) * 2.0)
    assert rec.face_box == (1, 2, 5, 4)


def test_generic_resamples_timestamped_csv(tmp_path):
    write_video(tmp_path / "v.mp4", _frames(), 30.0, lossless=True)
    ts = np.arange(4) * 0.06  # 4 rows at 0, 60, 120, 180 ms; frames at 0, 33.3, ..., 166.7 ms
    _write_csv(tmp_path / "v.csv", {"time_s": ts, "bvp": 10 * ts, "AU01": np.array([0, 1, 1, 0.0])}, 4)
    (rec,) = ds.iter_recordings("generic", tmp_path)
    ft = np.arange(T) / 30.0
    np.testing.assert_allclose(rec.bvp, 10 * ft, atol=1e-9)
    # Nearest sample for AU codes: frames at 0, 33, 67, 100, 133, 167 ms -> samples 0, 1, 1, 2, 2, 3.
    np.testing.assert_array_equal(rec.au[:, 0], [0, 1, 1, 1, 1, 0])
    assert np.all(np.isnan(rec.au[:, 1:]))


def test_generic_length_mismatch_names_file_and_lengths(tmp_path):
    write_video(tmp_path / "v.mp4", _frames(), 30.0, lossless=True)
    _write_csv(tmp_path / "v.csv", {"bvp": np.zeros(4)}, 4)
    with pytest.raises(UserError, match=r"v\.csv: 4 label rows but the video has 6 frames"):
        list(ds.iter_recordings("generic", tmp_path))


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("bvp\n1\n2\nx\n4\n5\n6\n", r"v\.csv: line 4, column 'bvp': not a number: 'x'"),
        ("bvp,resp\n1,2\n3\n", r"v\.csv: line 3 has 1 fields"),
        ("", r"v\.csv: CSV is empty"),
        ("bvp\n1\n2\n\n4\n5\n6\n\n", r"v\.csv: label 'bvp' has NaN.*frame 2"),
        ("bvp,resp\n1,1\n2,2\n,3\n4,4\n5,5\n6,6\n", r"v\.csv: label 'bvp' has NaN.*frame 2"),
        ("bvp\n1\n2\n3\n4\n5\n6\n", None),
    ],
)
def test_generic_csv_errors(tmp_path, text, pattern):
    write_video(tmp_path / "v.mp4", _frames(), 30.0, lossless=True)
    (tmp_path / "v.csv").write_text(text)
    if pattern is None:
        (rec,) = ds.iter_recordings("generic", tmp_path)
        np.testing.assert_array_equal(rec.bvp, np.arange(1, 7))
        return
    with pytest.raises(UserError, match=pattern):
        list(ds.iter_recordings("generic", tmp_path))


def test_generic_subjects_mapping_and_unlabelled(tmp_path):
    for i, stem in enumerate(["a_1", "a_2", "b_1"]):
        write_video(tmp_path / f"{stem}.mp4", _frames(seed=i), 30.0, lossless=True)
    (tmp_path / "subjects.csv").write_text("name,subject\na_1,alice\na_2,alice\nb_1,bob\n")
    assert ds.list_subjects("generic", tmp_path) == ["alice", "bob"]
    recs = list(ds.iter_recordings("generic", tmp_path, subjects=["alice"]))
    assert [(r.name, r.subject) for r in recs] == [("a_1", "alice"), ("a_2", "alice")]
    assert recs[0].bvp is None and recs[0].au is None  # no CSV: no labels
    recs = list(ds.generic_recordings(tmp_path, subject_map={"b_1": "carol"}))
    assert [r.subject for r in recs] == ["a_1", "a_2", "carol"]
    (rec,) = ds.iter_recordings("generic", tmp_path / "b_1.mp4")  # a single file as root
    assert rec.name == "b_1" and rec.subject == "bob"
