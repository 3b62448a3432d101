"""BP4D+ reader: tiny .mat trials in each frame layout read back; the paper's folds."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio

from bigsmall_jax.datasets import readers as ds
from bigsmall_jax.datasets import registry
from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.errors import UserError

T, H, W = 6, 8, 10


def _frames(t=T, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, H, W, 3), dtype=np.uint8)


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
    assert registry.list_subjects("bp4d_plus", tmp_path) == ["F001", "M012"]
    recs = list(registry.iter_recordings("bp4d_plus", tmp_path))
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
    assert [r.name for r in registry.iter_recordings("bp4d_plus", tmp_path, subjects=["M012"])] == ["M012_T10"]


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
    (rec,) = registry.iter_recordings("bp4d_plus", tmp_path)
    np.testing.assert_array_equal(rec.frames, frames)


def test_bp4d_plus_missing_au_keys_become_nan(tmp_path):
    _bp4d_mat(tmp_path / "F003_T1.mat", _frames(), AU24=None)
    (rec,) = registry.iter_recordings("bp4d_plus", tmp_path)
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
        list(registry.iter_recordings("bp4d_plus", tmp_path))


def test_bp4d_plus_corrupt_and_v73(tmp_path):
    (tmp_path / "F005_T1.mat").write_bytes(b"garbage" * 10)
    with pytest.raises(UserError, match=r"F005_T1\.mat: cannot read as a MATLAB file"):
        list(registry.iter_recordings("bp4d_plus", tmp_path))
    (tmp_path / "F005_T1.mat").unlink()
    header = b"MATLAB 7.3 MAT-file, HDF5 schema 1.00 .".ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM"
    (tmp_path / "F006_T1.mat").write_bytes(header + b"\0" * 512)
    try:
        import h5py  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match=r"F006_T1\.mat: MATLAB v7\.3"):
            list(registry.iter_recordings("bp4d_plus", tmp_path))


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
