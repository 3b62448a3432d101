"""The grain input pipeline: batch layout against the stored records, determinism by seed, disjoint
process shards, exact resumption from a saved position, and whole videos back in order."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest

from bigsmall_jax import synthetic
from bigsmall_jax.datasets import input_pipeline as ip
from bigsmall_jax.datasets import tfds_builders as tb
from bigsmall_jax.datasets.device_batch import device_big
from bigsmall_jax.datasets.preprocess import preprocess_recording, standardize_big
from bigsmall_jax.errors import UserError


@pytest.fixture(scope="module")
def train_source(tiny_synthetic_dataset):
    return tb.data_source(tiny_synthetic_dataset[1], "train")


def _clip_ids(batches) -> list[int]:
    """The record index of every clip of some batches, in order (frames of a clip share it)."""
    return [int(i) for b in batches for i in b["record_index"][::3]]


@pytest.mark.parametrize("first_only", [False, True])
def test_batch_layout_matches_the_stored_records(train_source, first_only):
    loader = ip.make_loader(train_source, batch_clips=4, shuffle=True, seed=0, num_epochs=1,
                            process_index=0, process_count=1, big_first_only=first_only)
    batch = next(iter(loader))
    tb_ = 1 if first_only else 3
    assert batch["big"].shape == (4 * tb_, 144, 144, 3) and batch["big"].dtype == np.uint8
    assert batch["big_mean"].shape == batch["big_std"].shape == (4 * tb_,)
    assert batch["small"].shape == (12, 9, 9, 3) and batch["au"].shape == (12, 12)
    for key in ("bvp", "bvp_mask", "resp", "resp_mask", "frame_mask", "record_index"):
        assert batch[key].shape == (12,), key
    for key, value in batch.items():
        assert np.all(np.isfinite(value)), key
    ids = batch["record_index"].reshape(4, 3)
    assert np.all(ids == ids[:, :1])  # the 3 frames of a clip are consecutive rows
    for c, idx in enumerate(ids[:, 0]):
        rec = train_source[int(idx)]  # TFDS's own decoding of the record
        rows = slice(3 * c, 3 * c + 3)
        np.testing.assert_array_equal(batch["big"][tb_ * c: tb_ * (c + 1)], rec["big"][:tb_])
        np.testing.assert_array_equal(batch["big_mean"][tb_ * c: tb_ * (c + 1)], rec["big_mean"])
        np.testing.assert_array_equal(batch["big_std"][tb_ * c: tb_ * (c + 1)], rec["big_std"])
        np.testing.assert_array_equal(batch["small"][rows], rec["small"])
        for kind in ("bvp", "resp", "au"):
            known = np.isfinite(rec[kind])
            np.testing.assert_array_equal(batch[kind][rows], np.where(known, rec[kind], 0))
            frame = rec["frame_mask"][:, None] if rec[kind].ndim == 2 else rec["frame_mask"]
            np.testing.assert_array_equal(batch[f"{kind}_mask"][rows], (known & frame).astype(np.float32))
    # Standardized on the device, the frames equal the host standardization of the stored ones up to float
    # rounding (at most 1 ulp apart: XLA and numpy may round the float32 division differently).
    big = np.asarray(jax.jit(device_big)({k: batch[k] for k in ("big", "big_mean", "big_std")}))
    for r in range(4 * tb_):
        want = standardize_big(batch["big"][r], float(batch["big_mean"][r]), float(batch["big_std"][r]))
        np.testing.assert_array_max_ulp(big[r], want, maxulp=1)
        wide = (batch["big"][r].astype(np.float64) - batch["big_mean"][r]) / batch["big_std"][r]
        np.testing.assert_allclose(big[r], wide, atol=1e-5)


def test_device_big_zeroes_a_constant_video_like_the_host():
    big = np.full((2, 2, 2, 3), 9, np.uint8)
    batch = {"big": big, "big_mean": np.array([9.0, 5.0], np.float32), "big_std": np.array([0.0, 2.0], np.float32)}
    out = np.asarray(jax.jit(device_big)(batch))
    np.testing.assert_array_equal(out[0], standardize_big(big[0], 9.0, 0.0))
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_array_equal(out[1], 2.0)  # (9 - 5) / 2


def test_clip_to_model_masks_missing_labels_and_padding():
    t = 3
    rec = {
        "big": np.full((t, 2, 2, 3), 7, np.uint8), "big_mean": np.float32(5.0), "big_std": np.float32(2.0),
        "small": np.zeros((t, 1, 1, 3), np.float32), "frame_mask": np.array([True, True, False]),
        "bvp": np.array([1.0, np.nan, 3.0], np.float32), "resp": np.full(t, np.nan, np.float32),
        "au": np.array([[1, 0] + [np.nan] * 10] * t, np.float32), "record_index": 5,
    }
    out = ip.clip_to_model(rec)
    np.testing.assert_array_equal(out["big"], rec["big"])
    np.testing.assert_array_equal(out["big_mean"], [5, 5, 5])
    np.testing.assert_array_equal(np.asarray(device_big(out)), np.ones((t, 2, 2, 3), np.float32))  # (7-5)/2
    assert ip.clip_to_model(rec, big_first_only=True)["big"].shape == (1, 2, 2, 3)
    np.testing.assert_array_equal(out["bvp"], [1, 0, 3])
    np.testing.assert_array_equal(out["bvp_mask"], [1, 0, 0])  # NaN, then a padded frame
    np.testing.assert_array_equal(out["resp_mask"], [0, 0, 0])
    np.testing.assert_array_equal(out["au_mask"][:, :3], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(out["record_index"], [5, 5, 5])
    flat = ip.flatten_clips({k: np.stack([v, v]) for k, v in out.items()})
    assert flat["big"].shape == (6, 2, 2, 3) and flat["au"].shape == (6, 12)


@pytest.mark.parametrize("first_only", [True, False])
def test_columns_records_and_decoded_sources_give_the_same_batches(train_source, first_only):
    """The loader's three paths: a gather from the decoded columns, `decode_examples` of the raw records, and
    `clip_to_model` of TFDS's own decoding (any sequence of decoded records)."""
    decoded = [train_source[i] for i in range(len(train_source))]

    def batches(source, columns):
        return list(ip.make_loader(source, batch_clips=3, shuffle=True, seed=4, num_epochs=1, process_index=0,
                                   process_count=1, big_first_only=first_only, columns=columns))

    reference = batches(decoded, False)
    for other in (batches(train_source, True), batches(train_source, False)):
        for got, want in zip(other, reference, strict=True):
            assert got.keys() == want.keys()
            for k in got:
                assert got[k].dtype == want[k].dtype, k
                np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_one_epoch_reads_every_clip_once_and_is_deterministic_by_seed(train_source):
    def ids(seed):
        loader = ip.make_loader(train_source, batch_clips=5, shuffle=True, seed=seed, num_epochs=1,
                                drop_remainder=False, process_index=0, process_count=1)
        return _clip_ids(loader)

    a, b, c = ids(1), ids(1), ids(2)
    assert sorted(a) == list(range(len(train_source)))
    assert a == b and a != c and sorted(c) == sorted(a)
    assert a != sorted(a)  # shuffled
    unshuffled = ip.make_loader(train_source, batch_clips=5, shuffle=False, seed=0, num_epochs=1,
                                drop_remainder=False, process_index=0, process_count=1)
    assert _clip_ids(unshuffled) == list(range(len(train_source)))


def test_epochs_are_reshuffled_and_drop_remainder_drops_only_the_last_batch(train_source):
    n = len(train_source)
    loader = ip.make_loader(train_source, batch_clips=4, shuffle=True, seed=3, num_epochs=2,
                            drop_remainder=True, process_index=0, process_count=1)
    got = _clip_ids(loader)
    assert len(got) == (2 * n) // 4 * 4
    assert sorted(got[:n]) == list(range(n)) and got[:n] != got[n : 2 * n]


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_two_processes_read_disjoint_parts(train_source, drop_remainder):
    n = len(train_source)
    parts = []
    for index in range(2):
        loader = ip.make_loader(train_source, batch_clips=1, shuffle=True, seed=0, num_epochs=1,
                                drop_remainder=drop_remainder, process_index=index, process_count=2)
        parts.append(_clip_ids(loader))
    assert not set(parts[0]) & set(parts[1])
    assert all(len(p) == len(set(p)) for p in parts)
    if drop_remainder:  # equal shares so that hosts step together; fewer than 2 clips left out
        assert len(parts[0]) == len(parts[1]) == n // 2
    else:
        assert sorted(parts[0] + parts[1]) == list(range(n))


def test_iterator_state_resumes_exactly(train_source):
    def loader():
        return ip.make_loader(train_source, batch_clips=3, shuffle=True, seed=7, num_epochs=None,
                              process_index=0, process_count=1)

    it = iter(loader())
    for _ in range(5):
        next(it)
    state = ip.iterator_state(it)
    expected = list(itertools.islice(it, 12))  # runs past the end of the first epoch
    resumed = ip.restore_iterator(loader(), state)
    got = list(itertools.islice(resumed, 12))
    assert _clip_ids(got) == _clip_ids(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g["big"], e["big"])
    with pytest.raises(UserError, match="cannot restore"):
        other = ip.make_loader(train_source, batch_clips=3, shuffle=True, seed=8, process_index=0,
                               process_count=1)
        ip.restore_iterator(other, state)


def test_iterator_state_round_trips_through_orbax(train_source, tmp_path):
    import grain
    import orbax.checkpoint as ocp

    def loader():
        return ip.make_loader(train_source, batch_clips=2, shuffle=True, seed=11, process_index=0, process_count=1)

    it = iter(loader())
    next(it)
    next(it)
    with ocp.CheckpointManager(tmp_path / "ckpt", item_names=("data",),
                               item_handlers={"data": grain.checkpoint.CheckpointHandler()}) as mngr:
        mngr.save(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
        mngr.wait_until_finished()
    expected = _clip_ids(itertools.islice(it, 4))
    fresh = iter(loader())
    with ocp.CheckpointManager(tmp_path / "ckpt", item_names=("data",),
                               item_handlers={"data": grain.checkpoint.CheckpointHandler()}) as mngr:
        mngr.restore(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
    assert _clip_ids(itertools.islice(fresh, 4)) == expected


def test_iter_videos_reassembles_whole_videos_in_order(tiny_synthetic_dataset):
    _, builder = tiny_synthetic_dataset
    cfg = builder.builder_config
    scfg = synthetic.SyntheticConfig(**cfg.synthetic)
    source = tb.data_source(builder, "test")
    videos = list(ip.iter_videos(source))
    subjects = set(map(str, synthetic.subject_splits(scfg)["test"]))
    recordings = {r.name: r for r in synthetic.iter_recordings(scfg) if str(r.subject) in subjects}
    assert sorted(v.video_id for v in videos) == sorted(recordings)
    assert sum(-(-r.num_frames // 3) for r in recordings.values()) == len(source)
    video_id, big, small, labels, fps = videos[0]
    rec = recordings[video_id]
    want = preprocess_recording(rec, cfg.preprocess_config())  # the whole video, never chunked
    assert big.shape == (rec.num_frames, 144, 144, 3) and fps == pytest.approx(rec.fps)
    np.testing.assert_allclose(big, standardize_big(want.big_u8, want.big_mean, want.big_std), atol=1e-5)
    assert abs(float(big.mean())) < 1e-3 and float(big.std()) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_array_equal(small, want.small)
    for kind, value in want.labels.items():
        if kind in labels:
            np.testing.assert_array_equal(labels[kind], value.astype(np.float32))
    raw = next(ip.iter_videos(source, standardize=False))
    np.testing.assert_array_equal(raw.big, want.big_u8)


def test_iter_videos_rejects_clips_out_of_order(tiny_synthetic_dataset):
    source = tb.data_source(tiny_synthetic_dataset[1], "test")
    records = [source[i] for i in range(4)]
    with pytest.raises(UserError, match="clip 2 where clip 1 was expected"):
        list(ip.iter_videos([records[0], records[2], records[1]]))
    with pytest.raises(UserError, match="has 2 of 17 clips"):
        list(ip.iter_videos(records[:2]))


def test_make_loader_rejects_bad_arguments(train_source):
    with pytest.raises(UserError, match="batch_clips"):
        ip.make_loader(train_source, batch_clips=0, shuffle=False, seed=0)
    with pytest.raises(UserError, match="no clips"):
        ip.make_loader([], batch_clips=1, shuffle=False, seed=0)


def test_worker_processes_resume_exactly(train_source):
    """With grain worker processes the position is saved and restored exactly too."""
    def loader():
        return ip.make_loader(train_source, batch_clips=2, shuffle=True, seed=5, num_epochs=None, worker_count=1,
                              process_index=0, process_count=1)

    it = iter(loader())
    first = _clip_ids(itertools.islice(it, 3))
    state = ip.iterator_state(it)
    expected = _clip_ids(itertools.islice(it, 3))
    assert len(set(first + expected)) == len(first + expected)  # no clip twice within an epoch
    resumed = ip.restore_iterator(loader(), state)
    assert _clip_ids(itertools.islice(resumed, 3)) == expected
