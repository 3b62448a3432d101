"""The decoded columns of a split: equal to TFDS's own decoding, rebuilt when they do not match the build,
picklable without their arrays, and skipped (not failed) where they cannot be written."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from bigsmall_jax.datasets import columns as cols
from bigsmall_jax.datasets import input_pipeline as ip
from bigsmall_jax.datasets import tfds_builders as tb


@pytest.fixture()
def train_source(tiny_synthetic_dataset):
    return tb.data_source(tiny_synthetic_dataset[1], "train")


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    """Columns in this test's own folder (the session's dataset is shared by parallel test workers)."""
    path = tmp_path / "train-first"
    monkeypatch.setattr(cols, "columns_folder", lambda source, first_only: path)
    return path


def test_columns_equal_tfds_decoding_and_are_rebuilt_when_stale(train_source, folder):
    layout = ip.tfds_example_layout(train_source)
    c = cols.open_columns(train_source, layout, big_first_only=True, progress=False)
    assert len(c) == len(train_source) and json.loads((folder / "meta.json").read_text())["records"] == len(c)
    idx = np.array([5, 0, 17])
    batch = c.gather(idx)
    for row, i in enumerate(idx):
        rec = train_source[int(i)]
        np.testing.assert_array_equal(batch["big"][row], rec["big"][0])
        np.testing.assert_array_equal(batch["small"][3 * row: 3 * row + 3], rec["small"])
        assert batch["big_std"][row] == rec["big_std"]
    assert pickle.loads(pickle.dumps(c)).gather(idx)["big"].tobytes() == batch["big"].tobytes()
    # A folder that does not match the build (here: another clip count) is rebuilt, not read.
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "records": 3}))
    np.save(folder / "big.npy", np.zeros((3, 1, 144, 144, 3), np.uint8))
    again = cols.open_columns(train_source, layout, big_first_only=True, progress=False)
    np.testing.assert_array_equal(again.gather(idx)["big"], batch["big"])


def test_unwritable_folder_falls_back_to_decoding(train_source, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(cols, "columns_folder", lambda source, first_only: blocker / "train-first")
    layout = ip.tfds_example_layout(train_source)
    assert cols.open_columns(train_source, layout, big_first_only=True, progress=False) is None
    batches = ip.ClipBatches(train_source, batch_clips=2, shuffle=False, seed=0, num_epochs=1, drop_remainder=True,
                             shard=(0, 1), big_first_only=True)
    np.testing.assert_array_equal(batches[0]["big"][1], train_source[1]["big"][0])
