"""Generic reader: videos with per-frame or timestamped CSV labels, subject mapping."""

from __future__ import annotations

import numpy as np
import pytest

from bigsmall_jax.datasets import readers as ds
from bigsmall_jax.datasets import registry
from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.datasets.video_io import write_video
from bigsmall_jax.errors import UserError

T, H, W = 6, 8, 10


def _frames(t=T, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, H, W, 3), dtype=np.uint8)


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
    assert registry.list_subjects("generic", tmp_path) == ["synth_000"]
    (rec,) = registry.iter_recordings("generic", tmp_path)
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
    (rec,) = registry.iter_recordings("generic", tmp_path)
    ft = np.arange(T) / 30.0
    np.testing.assert_allclose(rec.bvp, 10 * ft, atol=1e-9)
    # Nearest sample for AU codes: frames at 0, 33, 67, 100, 133, 167 ms -> samples 0, 1, 1, 2, 2, 3.
    np.testing.assert_array_equal(rec.au[:, 0], [0, 1, 1, 1, 1, 0])
    assert np.all(np.isnan(rec.au[:, 1:]))


def test_generic_length_mismatch_names_file_and_lengths(tmp_path):
    write_video(tmp_path / "v.mp4", _frames(), 30.0, lossless=True)
    _write_csv(tmp_path / "v.csv", {"bvp": np.zeros(4)}, 4)
    with pytest.raises(UserError, match=r"v\.csv: 4 label rows but the video has 6 frames"):
        list(registry.iter_recordings("generic", tmp_path))


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
        (rec,) = registry.iter_recordings("generic", tmp_path)
        np.testing.assert_array_equal(rec.bvp, np.arange(1, 7))
        return
    with pytest.raises(UserError, match=pattern):
        list(registry.iter_recordings("generic", tmp_path))


def test_generic_subjects_mapping_and_unlabelled(tmp_path):
    for i, stem in enumerate(["a_1", "a_2", "b_1"]):
        write_video(tmp_path / f"{stem}.mp4", _frames(seed=i), 30.0, lossless=True)
    (tmp_path / "subjects.csv").write_text("name,subject\na_1,alice\na_2,alice\nb_1,bob\n")
    assert registry.list_subjects("generic", tmp_path) == ["alice", "bob"]
    recs = list(registry.iter_recordings("generic", tmp_path, subjects=["alice"]))
    assert [(r.name, r.subject) for r in recs] == [("a_1", "alice"), ("a_2", "alice")]
    assert recs[0].bvp is None and recs[0].au is None  # no CSV: no labels
    recs = list(ds.generic_recordings(tmp_path, subject_map={"b_1": "carol"}))
    assert [r.subject for r in recs] == ["a_1", "a_2", "carol"]
    (rec,) = registry.iter_recordings("generic", tmp_path / "b_1.mp4")  # a single file as root
    assert rec.name == "b_1" and rec.subject == "bob"


# ------------------------------------------------------------------- label times that do not fit the video


def _labelled_video(tmp_path, t: int, fps: float, time_s: np.ndarray):
    """A video of `t` frames at `fps` and a CSV with a 1-Hz sine sampled at `time_s` (as written)."""
    write_video(tmp_path / "v.mp4", _frames(t), fps, lossless=True)
    _write_csv(tmp_path / "v.csv", {"time_s": time_s, "bvp": np.sin(2 * np.pi * np.arange(len(time_s)) / 25)},
               len(time_s))


@pytest.mark.parametrize(("case", "pattern"), [
    # time_s in milliseconds, one row per frame and resampled (rows at 100 Hz).
    ("ms_per_frame", r"v\.csv: 'time_s': the label times span 3960 s but the video 3\.96 s; are they in milli"),
    ("ms_resampled", r"v\.csv: 'bvp': the label times span 3990 s but the video 4 s; are they in milliseconds"),
    # A video retimed to 50 fps against labels of its 25-fps original: the frames would use half of them.
    ("retimed", r"v\.csv: 'bvp': the label times span 3\.98 s but the video 2 s \(a retimed video"),
    # Labels of the first 2 s of a 4-s video; labels of 4 s starting 1.5 s late.
    ("partial", r"v\.csv: 'bvp': the label times span 1\.99 s but the video 4 s \(.*labels of only part"),
    ("late", r"v\.csv: 'bvp': the labels cover 1\.50-5\.49 s but the frames span 0\.00-3\.96 s; 1\.50 s of the"),
])
def test_label_times_that_do_not_fit_the_video_are_refused(tmp_path, case, pattern):
    t, fps = 100, 25.0
    times = {
        "ms_per_frame": np.arange(t) / fps * 1000,
        "ms_resampled": np.arange(400) * 10.0,
        "retimed": np.arange(200) / 50.0,
        "partial": np.arange(200) / 100.0,
        "late": np.arange(400) / 100.0 + 1.5,
    }[case]
    _labelled_video(tmp_path, t, 50.0 if case == "retimed" else fps, times)
    with pytest.raises(UserError, match=pattern):
        list(registry.iter_recordings("generic", tmp_path))


def test_label_times_within_a_frame_or_two_are_accepted(tmp_path):
    """Labels at 100 Hz over the video's 4 s, starting 0.2 s early: resampled without complaint."""
    times = np.arange(420) / 100.0 - 0.2
    _labelled_video(tmp_path, 100, 25.0, times)
    (rec,) = registry.iter_recordings("generic", tmp_path)
    want = np.interp(np.arange(100) / 25.0, times, np.sin(2 * np.pi * np.arange(420) / 25))
    np.testing.assert_allclose(rec.bvp, want)
