"""The shared TFDS builder: stored clips equal the preprocessing of the regenerated recordings, features,
splits are subject-disjoint, storage is compact."""

from __future__ import annotations

import numpy as np
import pytest

from bigsmall_jax import synthetic
from bigsmall_jax.datasets import tfds_builders as tb
from bigsmall_jax.datasets.preprocess import chunk_video, preprocess_recording
from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.errors import UserError


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
    assert str(builder.version) == "1.5.0"
    assert {"1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0"} <= set(builder.release_notes)
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
