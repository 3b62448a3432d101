"""BP4D+ release reader: every step against the published loader's arrays, the bug settings in closed form,
unreadable trials, and the memory a trial takes."""

from __future__ import annotations

import tracemalloc
import zipfile

import cv2
import numpy as np
import pytest
from loader_reference import copy_tree, golden, loader_dir, max_abs

from bigsmall_jax.datasets.readers import bp4d_release as br
from bigsmall_jax.datasets.readers.bp4d_plus import bp4d_plus_subjects, bp4d_plus_trials, read_bp4d_plus_trial
from bigsmall_jax.errors import UserError

TRIALS = ("F001_T1", "F001_T8", "M001_T1")
WAVES = ("bp_wave", "resp_wave", "pos_bvp", "pos_env_norm_bvp")  # diff-normalized in labels_processed


@pytest.fixture(scope="module")
def ref():
    return loader_dir("bp4d_raw") / "tree", golden("bp4d_raw")


def _diff_norm(x):
    d = np.diff(x)
    return np.append(d / np.std(d), 0.0)


def test_listing_keeps_the_au_coded_trials(ref, tmp_path):
    root, g = ref
    assert br.release_trials(root) == list(TRIALS)  # M001 T2 is not AU-coded
    assert bp4d_plus_trials(root, ["M001"]) == ["M001_T1"] and bp4d_plus_subjects(root) == ["F001", "M001"]
    for subject, trial in (("F041", "T7"), ("F041", "T6"), ("F041", "T3")):
        (tmp_path / "Physiology" / subject / trial).mkdir(parents=True)
    assert br.release_trials(tmp_path) == ["F041_T6"]  # F041 T7 is always left out
    assert br.LABEL_COLUMNS == tuple(g["label_columns"])
    assert tuple(n for n, _ in br.PHYS_FILES) == tuple(g["phys_columns"])
    assert len(br.AU_COLUMNS) == 39 and [c for c in br.AU_COLUMNS if c.endswith("int")] == list(g["au_int_columns"])
    assert [br.LABEL_COLUMNS.index(c) for c in ("AU01", "AU02", "AU04", "AU06", "AU07", "AU10", "AU12", "AU14",
                                                "AU15", "AU17", "AU23", "AU24")] == list(g["target_idx_au"])


@pytest.mark.parametrize("tid", TRIALS)
def test_every_step_equals_the_published_loader(ref, tid):
    root, g = ref
    key = tid.replace("_", "")
    subject, trial = br.split_trial_id(tid)
    zip_path = root / "2D+3D" / f"{subject}.zip"
    entries = br.zip_trial_entries(zip_path, trial)
    np.testing.assert_array_equal(br.read_zip_frames(zip_path, entries), g[f"{key}/frames_read"])
    phys = br.read_physiology(root / "Physiology" / subject / trial, len(entries))
    np.testing.assert_array_equal(np.stack([phys[c] for c in g["phys_columns"]], 1), g[f"{key}/phys_resampled"])
    occ, inten, crop = br.read_au_coding(root, subject, trial, len(entries))
    np.testing.assert_array_equal(occ, g[f"{key}/au_occ_padded"])
    np.testing.assert_array_equal(inten, g[f"{key}/au_int_padded"])
    assert list(crop) == list(g[f"{key}/au_crop_np_idx"])

    t = br.read_release_trial(root, tid)
    np.testing.assert_array_equal(t.frames, g[f"{key}/frames"])
    rgb = np.array([cv2.mean(f)[:3] for f in t.frames])
    np.testing.assert_allclose(rgb, g[f"{key}/pos_rgb_mean"], rtol=0, atol=1e-12)
    hr = t.labels["HR_bpm"]
    pos = br.pos_pseudo_ppg(rgb, float(np.sum(hr) / hr.size))
    for mine, theirs, tol in (("H", "pos_H", 1e-12), ("detrended", "pos_detrended", 1e-12),
                              ("band_hz", "pos_band_hz", 1e-15), ("b", "pos_b", 1e-15), ("a", "pos_a", 1e-15),
                              ("bvp", "pos_bvp", 1e-12), ("envelope", "pos_envelope", 1e-12),
                              ("env_norm_bvp", "pos_env_norm_bvp", 1e-11)):
        assert max_abs(pos[mine], g[f"{key}/{theirs}"]) <= tol, mine
    table = np.stack([t.labels[c] for c in br.LABEL_COLUMNS], axis=1)
    waves = [br.LABEL_COLUMNS.index(c) for c in WAVES]
    rest = [i for i in range(len(br.LABEL_COLUMNS)) if i not in waves]
    np.testing.assert_allclose(table[:, waves], g[f"{key}/labels_raw"][:, waves], rtol=0, atol=1e-11)
    np.testing.assert_array_equal(table[:, rest], g[f"{key}/labels_processed"][:, rest])  # clipped, AUs mapped
    for i in waves:
        np.testing.assert_allclose(_diff_norm(table[:, i]), g[f"{key}/labels_processed"][:, i], rtol=0, atol=1e-10)


def test_the_published_bugs_and_their_corrections_in_closed_form(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("".join(f"{v}\n" for v in range(7, 107)))  # 100 samples 7..106
    assert br.read_signal(path, "drop")[0] == 8 and br.read_signal(path, "keep").size == 100
    x = np.arange(100.0)
    # 4 frames: "stretch" puts frame k at sample k * 100 / 3 (the last past the end, held); "clock" at 40 k.
    np.testing.assert_allclose(br.resample_signal(x, 4, "stretch"), [0, 100 / 3, 200 / 3, 99])
    np.testing.assert_allclose(br.resample_signal(x, 4, "clock"), [0, 40, 80, 99])
    assert br.pos_band(72.0, 25.0, "published") == pytest.approx((0.7, 1.2 + 0.8))
    assert br.pos_band(72.0, 25.0, "bpm") == pytest.approx((1.2 - 1 / 3, 1.2 + 1 / 3))
    codes = np.array([[0, 1, 9, 3]])
    np.testing.assert_array_equal(br.map_au_codes(codes, "published"), [[0, 1, 0, 0]])
    np.testing.assert_array_equal(br.map_au_codes(codes, "masked"), [[0, 1, np.nan, np.nan]])
    np.testing.assert_array_equal(br.map_au_codes(codes, "masked", intensity=True), [[0, 1, np.nan, 3]])
    np.testing.assert_array_equal(br.map_au_codes(-np.ones((2, 2)), "published"), -1)  # all -1: left alone
    # POS: the published windows never reach the last frame (H[-1] == 0); "windowed" ends there.
    rng = np.random.default_rng(0)
    rgb = 100 + rng.normal(size=(60, 3))
    h_pub = br.pos_pseudo_ppg(rgb, 72.0)["H"]
    h_win = br.pos_pseudo_ppg(rgb, 72.0, options=br.ReleaseOptions(pos_last_frame="windowed"))["H"]
    assert h_pub[-1] == 0 and h_win[-1] != 0
    np.testing.assert_allclose(h_pub[:-1], h_win[:-1] - _last_window(rgb), atol=1e-12)
    with pytest.raises(UserError, match="au_codes='nope': valid: published, masked"):
        br.ReleaseOptions(au_codes="nope")


def _last_window(rgb):
    """The one window "windowed" adds: frames [N - 40, N), as Wang et al. define it."""
    c = rgb[-40:] / rgb[-40:].mean(axis=0)
    s = c @ np.array([[0, 1, -1], [-2, 1, 1]]).T
    h = s[:, 0] + s[:, 0].std() / s[:, 1].std() * s[:, 1]
    out = np.zeros(len(rgb))
    out[-40:] = h - h.mean()
    return out[:-1]


def test_corrected_settings_change_only_what_they_name(ref):
    root, g = ref
    pub = br.read_release_trial(root, "F001_T1")
    fixed = br.read_release_trial(root, "F001_T1", br.ReleaseOptions(
        au_codes="masked", phys_first_sample="keep", phys_grid="clock", pos_halfband="bpm"))
    np.testing.assert_array_equal(pub.frames, fixed.frames)
    lines = np.loadtxt(root / "Physiology" / "F001" / "T1" / "BP_mmHg.txt")
    start = pub.crop[0]
    np.testing.assert_allclose(fixed.labels["bp_wave"], lines[(start + np.arange(len(pub.frames))) * 40])
    occ = np.genfromtxt(root / "AUCoding" / "AU_OCC" / "F001_T1.csv", delimiter=",", skip_header=1)
    au1 = occ[:, 1]
    np.testing.assert_array_equal(fixed.labels["AU01"], np.where(np.isin(au1, (0, 1)), au1, np.nan))
    np.testing.assert_array_equal(pub.labels["AU01"], (au1 == 1).astype(float))
    assert not np.allclose(fixed.labels["pos_env_norm_bvp"], pub.labels["pos_env_norm_bvp"])


@pytest.mark.parametrize("damage, pattern", [
    (lambda r: (r / "Physiology/F001/T8/Resp_Volts.txt").unlink(), r"T8/Resp_Volts\.txt: physiology file not found"),
    (lambda r: (r / "Physiology/F001/T8/EDA_microsiemens.txt").write_text("1.0\nx\n"),
     r"EDA_microsiemens\.txt: not one number a line"),
    (lambda r: (r / "AUCoding/AU_INT/AU12/F001_T8_AU12.csv").unlink(), r"F001_T8_AU12\.csv: AU coding file not found"),
    (lambda r: _drop_last_line(r / "AUCoding/AU_INT/AU17/F001_T8_AU17.csv"),
     r"F001_T8_AU17\.csv: 71 rows x 2 columns; expected 72 rows"),
    (lambda r: _drop_last_line(r / "AUCoding/AU_OCC/F001_T8.csv", keep=80),
     r"F001_T8\.csv: 72 rows for frames 9\.\.80, but the zip has frames 1\.\.75"),
    (lambda r: _strip_trial(r / "2D+3D/F001.zip", "T8"), r"F001\.zip: no frames for trial T8"),
    (lambda r: (r / "2D+3D/F001.zip").write_bytes(b"not a zip"), r"F001\.zip: cannot read as a zip archive"),
])
def test_unreadable_trials_name_the_file(tmp_path, damage, pattern):
    root = copy_tree("bp4d_raw", tmp_path / "tree")
    damage(root)
    with pytest.raises(UserError, match=pattern):
        read_bp4d_plus_trial(root, "F001_T8")


def _drop_last_line(path, keep=None):
    lines = path.read_text().splitlines()
    if keep is not None:  # renumber the rows to end at frame `keep`
        n = len(lines) - 1
        lines = [lines[0]] + [",".join([str(keep - n + 1 + i), *r.split(",")[1:]]) for i, r in enumerate(lines[1:])]
        path.write_text("\n".join(lines) + "\n")
        return
    path.write_text("\n".join(lines[:-1]) + "\n")


def _strip_trial(zip_path, trial):
    with zipfile.ZipFile(zip_path) as z:
        items = [(n, z.read(n)) for n in z.namelist() if f"/{trial}/" not in n]
    with zipfile.ZipFile(zip_path, "w") as z:
        for n, data in items:
            z.writestr(n, data)


def test_a_trial_is_held_once_at_144_pixels(ref):
    """Peak traced memory of reading F001 T1 (78 cropped frames of 696 x 520): the 144 x 144 frames plus a few
    full-size decodes, not the 78 full-size frames (85 MB)."""
    root, _ = ref
    tracemalloc.start()
    try:
        trial = br.read_release_trial(root, "F001_T1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_frame = 696 * 520 * 3
    assert trial.frames.shape == (78, 144, 144, 3)
    assert peak < trial.frames.nbytes + 4 * full_frame, (peak, trial.frames.nbytes)
