"""TFDS builders and `python -m bigsmall_jax.prepare`: stored clips equal the preprocessing of the
regenerated recordings, splits are subject-disjoint, an interrupted build never loads, bad input is one
clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bigsmall_jax import synthetic
from bigsmall_jax.datasets import prepare
from bigsmall_jax.datasets import tfds_builders as tb
from bigsmall_jax.datasets.preprocess import chunk_video, preprocess_recording
from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Even smaller than the shared fixture, for the tests that build their own dataset.
MINI = dict(n_subjects=4, videos_per_subject=1, duration_s=0.6, fps=25.0, frame_size=48, big_size=36,
            small_size=4)


def _records(builder, split):
    source = tb.data_source(builder, split)
    return [source[i] for i in range(len(source))]


def _synthetic_config(builder):
    return synthetic.SyntheticConfig(**builder.builder_config.synthetic)


def test_features_splits_and_config(tiny_synthetic_dataset):
    _, builder = tiny_synthetic_dataset
    cfg = builder.builder_config
    assert (cfg.big_size, cfg.small_size, cfg.n_segment, cfg.tail) == (144, 9, 3, "pad")
    assert set(builder.info.splits) == {"train", "validation", "test"}
    feats = builder.info.features
    assert feats["big"].shape == (3, 144, 144, 3) and feats["big"].np_dtype == np.uint8
    assert feats["small"].shape == (3, 9, 9, 3) and feats["small"].np_dtype == np.float32
    assert feats["au"].shape == (3, len(AU_NAMES))
    assert str(builder.version) == "1.0.0" and "1.0.0" in builder.release_notes
    # Every video of 50 frames is 17 clips (16 full + 1 padded), every clip stored once.
    scfg = _synthetic_config(builder)
    n_videos = scfg.n_subjects * scfg.videos_per_subject
    total = sum(builder.info.splits[s].num_examples for s in builder.info.splits)
    assert scfg.num_frames == 50 and total == n_videos * 17


def test_splits_are_subject_disjoint_and_match_subject_splits(tiny_synthetic_dataset):
    _, builder = tiny_synthetic_dataset
    expected = synthetic.subject_splits(_synthetic_config(builder))
    seen = {}
    for split in builder.info.splits:
        source = tb.data_source(builder, split)
        seen[split] = {r["subject"].decode() for r in (source[i] for i in range(len(source)))}
    assert seen["train"] and seen["validation"] and seen["test"]
    for a in seen:
        for b in seen:
            if a < b:
                assert not seen[a] & seen[b], (a, b)
    assert {s: sorted(v) for s, v in seen.items()} == {s: sorted(map(str, expected[s])) for s in seen}


def test_stored_clips_equal_preprocessing_of_the_regenerated_video(tiny_synthetic_dataset):
    _, builder = tiny_synthetic_dataset
    cfg = builder.builder_config
    recordings = {r.name: r for r in synthetic.iter_recordings(_synthetic_config(builder))}
    for split in ("train", "test"):
        records = _records(builder, split)
        video_id = records[0]["video_id"].decode()
        clips = [r for r in records if r["video_id"].decode() == video_id]
        rec = recordings[video_id]
        video = preprocess_recording(rec, cfg.preprocess_config())
        expected = chunk_video(video, cfg.n_segment, cfg.tail)
        assert len(clips) == len(expected) == -(-rec.num_frames // 3)
        for got, want in zip(clips, expected, strict=True):
            assert got["chunk_index"] == want["chunk_index"] and got["num_chunks"] == len(expected)
            np.testing.assert_array_equal(got["big"], want["big_u8"])  # uint8: lossless
            assert got["big_mean"] == pytest.approx(video.big_mean, rel=1e-6)
            assert got["big_std"] == pytest.approx(video.big_std, rel=1e-6)
            np.testing.assert_array_equal(got["small"], want["small"])
            np.testing.assert_array_equal(got["frame_mask"], want["frame_mask"] > 0)
            for kind in ("bvp", "resp", "au", "hr_bpm", "rr_bpm"):
                if kind in want["labels"]:
                    np.testing.assert_array_equal(got[kind], want["labels"][kind].astype(np.float32))
                else:
                    assert np.all(np.isnan(got[kind]))
            assert got["subject"].decode() == str(rec.subject) and got["fps"] == pytest.approx(rec.fps)
        # The last clip holds frames 48, 49 and a repeat of 49 (masked).
        np.testing.assert_array_equal(clips[-1]["frame_mask"], [True, True, False])
        np.testing.assert_array_equal(clips[-1]["big"][2], clips[-1]["big"][1])
        # Labels are the diff-normalized waves: std 1 over the video's diffs (closed form).
        bvp = np.concatenate([c["bvp"] for c in clips])[: rec.num_frames]
        assert np.std(bvp[:-1]) == pytest.approx(1.0, rel=1e-4) and bvp[-1] == 0.0


def test_storage_is_compact(tiny_synthetic_dataset):
    _, builder = tiny_synthetic_dataset
    stats = tb.storage_stats(builder)
    frames = sum(builder.info.splits[s].num_examples for s in builder.info.splits) * 3
    assert stats["all"]["frames"] == frames
    # Raw payload of one frame: uint8 Big + float32 Small and labels (ArrayRecord may compress it).
    payload = 144 * 144 * 3 + 9 * 9 * 3 * 4 + (4 + 12) * 4 + 1
    assert stats["all"]["bytes_per_frame"] < 1.25 * payload  # incl. 64 KiB block rounding of tiny files
    assert stats["all"]["vs_torch"] > 3.0
    assert tb.TORCH_BYTES_PER_FRAME == 249804


def test_split_by_fraction_closed_form():
    subjects = [f"S{i:02d}" for i in range(10)][::-1]
    out = tb.split_by_fraction(subjects, (("train", 0.6), ("validation", 0.2), ("test", 0.2)))
    assert out == {"train": [f"S{i:02d}" for i in range(6)], "validation": ["S06", "S07"], "test": ["S08", "S09"]}
    assert tb.split_by_fraction(["b", "a", "a"], (("test", 1.0),)) == {"test": ["a", "b"]}
    with pytest.raises(UserError, match="sum to 1"):
        tb.split_by_fraction(subjects, (("train", 0.5),))


def test_make_config_names_and_errors():
    base = tb.make_config("synthetic")
    assert base.name == "default" and tb.make_config("bigsmall_synthetic", "default") is base
    a = tb.make_config("synthetic", n_subjects=3, duration_s=2)
    assert a.name.startswith("default-") and a.name == tb.make_config("synthetic", duration_s=2, n_subjects=3).name
    assert a.synthetic == {"n_subjects": 3, "duration_s": 2}
    assert tb.make_config("synthetic", n_subjects=3, duration_s=2, n_segment=4).name != a.name
    assert tb.make_config("bp4d_plus", "fold2").fold == 2
    with pytest.raises(UserError, match="unknown dataset 'nope'; valid: synthetic, bp4d_plus"):
        tb.make_config("nope")
    with pytest.raises(UserError, match="unknown config 'fold9'; valid: fold1, fold2, fold3"):
        tb.make_config("bp4d_plus", "fold9")
    with pytest.raises(UserError, match="unknown setting 'n_subjects'"):
        tb.make_config("ubfc_rppg", n_subjects=3)  # synthetic-only setting
    with pytest.raises(UserError, match="unknown label kind"):
        tb.make_config("generic", labels=["ppg"])


def test_bp4d_folds_use_pos_for_training_and_bp_for_test():
    cfg = tb.make_config("bp4d_plus", "fold1")
    assert (cfg.train_bvp_key, cfg.test_bvp_key) == ("pos_env_norm_bvp", "bvp")
    assert set(cfg.labels) == {"bvp", "resp", "au"}


def test_real_dataset_without_raw_data_is_one_clear_error(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(UserError, match=r"raw data directory .*no_such_dir does not exist"):
        prepare.ensure_dataset("ubfc_rppg", tmp_path / "data", source_dir=missing, progress=False)
    assert not list((tmp_path / "data").glob("bigsmall_ubfc_rppg/*/*/dataset_info.json"))


def _prepared_dirs(data_dir):
    return sorted(p.parent for p in data_dir.glob("bigsmall_synthetic/*/*/dataset_info.json"))


def test_interrupted_build_is_not_loadable_and_a_rerun_succeeds(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    real = tb.BigsmallSynthetic._iter_recordings

    def failing(self, root, subjects):
        total, recordings = real(self, root, subjects)

        def gen():
            yield next(recordings)  # one video is preprocessed and written, then the source breaks
            raise RuntimeError("simulated crash in the middle of the build")

        return total, gen()

    monkeypatch.setattr(tb.BigsmallSynthetic, "_iter_recordings", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare.ensure_dataset("synthetic", data_dir, progress=False, **MINI)
    builder = tb.BigsmallSynthetic(data_dir=data_dir, config=tb.make_config("synthetic", **MINI))
    assert not builder.is_prepared() and not _prepared_dirs(data_dir)
    assert not list(data_dir.rglob("incomplete.*"))  # the temporary directory was removed
    with pytest.raises(UserError, match="is not built"):
        tb.data_source(builder, "train")

    monkeypatch.setattr(tb.BigsmallSynthetic, "_iter_recordings", real)
    builder = prepare.ensure_dataset("synthetic", data_dir, progress=False, **MINI)
    assert builder.is_prepared() and len(tb.data_source(builder, "train")) > 0


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # subprocess fork+exec after JAX started: safe
def test_killed_build_leaves_nothing_loadable(tmp_path):
    """A process killed mid-build (no Python cleanup) leaves only an ignored incomplete.* directory."""
    data_dir = tmp_path / "data"
    script = textwrap.dedent(f"""
        import os
        from bigsmall_jax.datasets import prepare
        from bigsmall_jax.datasets import tfds_builders as tb
        real = tb.BigsmallSynthetic._iter_recordings
        def dying(self, root, subjects):
            total, recordings = real(self, root, subjects)
            def gen():
                yield next(recordings)
                os._exit(9)  # like SIGKILL: no finally blocks, no cleanup
            return total, gen()
        tb.BigsmallSynthetic._iter_recordings = dying
        prepare.ensure_dataset("synthetic", {str(data_dir)!r}, progress=False, **{MINI!r})
    """)
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]
    assert list(data_dir.rglob("incomplete.*")) and not _prepared_dirs(data_dir)
    builder = prepare.ensure_dataset("synthetic", data_dir, progress=False, **MINI)
    assert builder.is_prepared() and len(_prepared_dirs(data_dir)) == 1


def test_prepare_cli_unknown_dataset_lists_valid_names(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        prepare.main(["--dataset", "imagenet", "--data-dir", str(tmp_path / "d")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: unknown dataset 'imagenet'; valid: synthetic, bp4d_plus, ubfc_rppg, pure, generic"]
    assert not (tmp_path / "d" / "bigsmall_imagenet").exists()


def test_prepare_cli_reuses_a_built_dataset_and_prints_json(tiny_synthetic_dataset, capsys):
    from conftest import TINY_SYNTHETIC

    data_dir, builder = tiny_synthetic_dataset
    args = ["--dataset", "synthetic", "--data-dir", str(data_dir), "--no-progress"]
    for key, value in TINY_SYNTHETIC.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    prepare.main(args)
    out = json.loads(capsys.readouterr().out)
    assert out["config"] == builder.builder_config.name and out["dataset"] == "bigsmall_synthetic"
    assert {s: v["clips"] for s, v in out["splits"].items()} == {
        s: builder.info.splits[s].num_examples for s in builder.info.splits}
    assert out["bytes_per_frame"] > 0


def test_prepare_cli_bad_setting_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        prepare.main(["--data-dir", str(tmp_path), "--set", "colour=red"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bigsmall_synthetic: unknown setting 'colour'")


def test_parallel_build_writes_the_same_records_as_a_sequential_one(tmp_path):
    builders = [prepare.ensure_dataset("synthetic", tmp_path / f"w{w}", progress=False, workers=w, **MINI)
                for w in (0, 2)]
    for split in builders[0].info.splits:
        a, b = (_records(builder, split) for builder in builders)
        assert len(a) == len(b) > 0
        for x, y in zip(a, b, strict=True):
            assert x.keys() == y.keys()
            for key in x:
                np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_generic_builder_reads_videos_and_csv_from_source_dir(tmp_path):
    """The generic family on videos + label CSVs written by the synthetic generator (lossless video)."""
    scfg = synthetic.SyntheticConfig(**{k: v for k, v in MINI.items() if k not in ("big_size", "small_size")})
    raw = tmp_path / "raw"
    recordings = {r.name: r for r in synthetic.iter_recordings(scfg)}
    for rec in recordings.values():
        synthetic.write_files(rec, raw)
    builder = prepare.ensure_dataset("generic", tmp_path / "data", source_dir=raw, progress=False,
                                     face_crop="box", big_size=36, small_size=4)
    cfg = builder.builder_config
    # 4 subjects (one per video stem), 60/20/20 of the sorted ids: 2 / 1 / 1.
    sizes = {s: sorted({r["subject"].decode() for r in _records(builder, s)}) for s in builder.info.splits}
    assert sizes == {"train": ["S00_V0", "S01_V0"], "validation": ["S02_V0"], "test": ["S03_V0"]}
    for split in builder.info.splits:
        records = _records(builder, split)
        rec = recordings[records[0]["video_id"].decode()]
        records = [r for r in records if r["video_id"].decode() == rec.name]
        want = chunk_video(preprocess_recording(rec, cfg.preprocess_config()), cfg.n_segment, cfg.tail)
        assert len(records) == len(want) == 5
        for got, w in zip(records, want, strict=True):
            np.testing.assert_array_equal(got["big"], w["big_u8"])  # lossless video round trip
            np.testing.assert_array_equal(got["au"], w["labels"]["au"])
            np.testing.assert_allclose(got["bvp"], w["labels"]["bvp"], atol=2e-3)  # CSV keeps 6 decimals
            np.testing.assert_allclose(got["hr_bpm"], w["labels"]["hr_bpm"], atol=1e-3)


def _diff_norm(wave):
    d = np.diff(np.asarray(wave, np.float64))
    return np.append(d / d.std(), 0.0)


def test_bp4d_plus_trains_on_pos_and_tests_on_blood_pressure(tmp_path):
    """Fold 1 from two tiny BP4D+ files: train pulse label = POS wave, test pulse label = BP wave."""
    from scipy import io as sio

    rng = np.random.default_rng(0)
    t = 12
    waves = {}
    for name in ("F046_T1", "F006_T1"):  # F046 trains in fold 1, F006 is tested
        waves[name] = {k: rng.normal(size=t) for k in ("bp_wave", "pos_env_norm_bvp", "resp_wave")}
        au = {a: rng.integers(0, 2, t).astype(float) for a in AU_NAMES}
        au["AU01"][0] = 9  # "unknown" code
        sio.savemat(tmp_path / f"{name}.mat", {"X": rng.integers(0, 256, (t, 40, 40, 3), dtype=np.uint8),
                                               "HR_bpm": np.full(t, 70.0), "resp_bpm": np.full(t, 15.0),
                                               **waves[name], **au})
    builder = prepare.ensure_dataset("bp4d_plus", tmp_path / "data", config="fold1", source_dir=tmp_path,
                                     progress=False, face_crop="none", big_size=36, small_size=4)
    assert builder.builder_config.name.startswith("fold1-")
    for split, name, key in (("train", "F046_T1", "pos_env_norm_bvp"), ("test", "F006_T1", "bp_wave")):
        records = _records(builder, split)
        assert {r["video_id"].decode() for r in records} == {name} and len(records) == t // 3
        np.testing.assert_allclose(np.concatenate([r["bvp"] for r in records]), _diff_norm(waves[name][key]),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.concatenate([r["resp"] for r in records]),
                                   _diff_norm(waves[name]["resp_wave"]), rtol=1e-5, atol=1e-6)
        au = np.concatenate([r["au"] for r in records])
        assert np.isnan(au[0, 0]) and not np.isnan(au[1:, 0]).any()
        np.testing.assert_array_equal(np.concatenate([r["hr_bpm"] for r in records]), 70.0)


def test_parallel_build_leaves_no_leaked_semaphores(tmp_path):
    """The spawned build workers exit on their own (close + join): terminating them leaked their semaphores,
    which Python reported at exit as 'resource_tracker: There appear to be N leaked semaphore objects'."""
    import os
    import subprocess
    import sys

    code = ("from bigsmall_jax.datasets.prepare import ensure_dataset\n"
            f"ensure_dataset('synthetic', {str(tmp_path)!r}, progress=False, workers=2, n_subjects=6, "
            "videos_per_subject=2, duration_s=8.0, fps=25.0, frame_size=64, seed=0)\n"
            "print('built')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("built")
    assert "leaked" not in done.stderr and "resource_tracker" not in done.stderr, done.stderr[-2000:]
