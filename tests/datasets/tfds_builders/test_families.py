"""The dataset families: the generic and BP4D+ builders on tiny raw files, parallel synthetic builds."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from bigsmall_jax import synthetic
from bigsmall_jax.datasets import prepare
from bigsmall_jax.datasets import tfds_builders as tb
from bigsmall_jax.datasets.preprocess import chunk_video, preprocess_recording
from bigsmall_jax.datasets.recording import AU_NAMES

MINI = dict(n_subjects=4, videos_per_subject=1, duration_s=0.6, fps=25.0, frame_size=48, big_size=36,
            small_size=4)


def _records(builder, split):
    source = tb.data_source(builder, split)
    return [source[i] for i in range(len(source))]


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

    code = ("from bigsmall_jax.datasets.prepare import ensure_dataset\n"
            f"ensure_dataset('synthetic', {str(tmp_path)!r}, progress=False, workers=2, n_subjects=6, "
            "videos_per_subject=2, duration_s=8.0, fps=25.0, frame_size=64, seed=0)\n"
            "print('built')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("built")
    assert "leaked" not in done.stderr and "resource_tracker" not in done.stderr, done.stderr[-2000:]
