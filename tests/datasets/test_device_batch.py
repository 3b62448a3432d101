"""The batch as sent to the devices: three arrays that give the step back exactly the loader's arrays."""

from __future__ import annotations

import types

import jax
import numpy as np
import optax
import pytest

from bigsmall_jax.benchmark.models import synthetic_batch
from bigsmall_jax.datasets.device_batch import pack_batch, unpack_batch
from bigsmall_jax.datasets.input_pipeline import batch_bytes_per_clip
from bigsmall_jax.model import ModelConfig, build_model
from bigsmall_jax.train.parallel import AXIS, replicate, shard_batch, unreplicate
from bigsmall_jax.train.state import create_train_state
from bigsmall_jax.train.step import make_train_step


def _loader_batch(config: ModelConfig, n_clips: int, first_only: bool, seed: int = 0):
    batch = synthetic_batch(config, n_clips, seed, big_first_only=first_only)
    rng = np.random.default_rng(seed + 1)
    n = batch["small"].shape[0]
    for key in ("au_mask", "bvp_mask", "resp_mask", "frame_mask"):  # masks that are not all ones
        batch[key] = (rng.random(batch[key].shape) > 0.3).astype(np.float32)
    batch["bvp"], batch["resp"] = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    batch["big_mean"] = rng.uniform(50, 200, batch["big_mean"].shape).astype(np.float32)
    batch["big_std"] = rng.uniform(10, 80, batch["big_std"].shape).astype(np.float32)
    batch["record_index"] = np.repeat(np.arange(n_clips, dtype=np.int32), config.n_segment)
    return batch


@pytest.mark.parametrize("first_only", [True, False])
@pytest.mark.parametrize("small_size", [9, 5])
def test_unpack_gives_back_every_array_exactly(first_only, small_size):
    config = types.SimpleNamespace(big_size=16, small_size=small_size, n_segment=4)  # what synthetic_batch reads
    batch = _loader_batch(config, 3, first_only)
    packed = pack_batch(batch)
    assert sorted(packed) == ["big", "big_stats", "frames"] and packed["big"].dtype == np.uint8
    for name, unpack in (("numpy", lambda p: unpack_batch(p, small_size)),
                         ("jit", jax.jit(lambda p: unpack_batch(p, small_size)))):
        out = unpack(packed)
        assert sorted(out) == sorted(k for k in batch if k != "record_index"), name
        for key, value in out.items():
            np.testing.assert_array_equal(np.asarray(value), batch[key], err_msg=f"{name}: {key}")
            assert np.asarray(value).dtype == batch[key].dtype, (name, key)


def test_packed_bytes_per_clip_is_the_stored_frames_plus_the_labels():
    """Closed form: one uint8 Big frame per clip (with Big downsampling) and its two statistics, plus per
    frame the Small frame, 12 AU labels and masks, and five scalars, in float32."""
    config = ModelConfig()
    packed = pack_batch(_loader_batch(config, 16, True))
    t, s = config.n_segment, config.small_size
    expected = 144 * 144 * 3 + 2 * 4 + t * (3 * s * s + 2 * 12 + 5) * 4
    assert batch_bytes_per_clip(packed, 16) == expected == 65_480


def test_unpack_refuses_a_width_that_does_not_fit():
    packed = pack_batch(_loader_batch(ModelConfig(), 2, True))
    with pytest.raises(ValueError, match="do not fit Small frames of side 8"):
        unpack_batch(packed, 8)


def test_a_step_on_the_packed_batch_equals_a_step_on_the_loader_batch():
    """Same losses, gradient norm and updated parameters (dropout on, per clip) from either form."""
    config = ModelConfig(big_filters=(4, 4, 4, 8, 8, 8), small_filters=(4, 4, 4, 8), dense_units=8)
    model = build_model(config)
    batch = _loader_batch(config, 4, True)
    tx = optax.adamw(1e-3)
    step = jax.pmap(make_train_step(model, optax.constant_schedule(1e-3), seed=0, task_weights={}),
                    axis_name=AXIS, devices=jax.devices()[:1])
    results = []
    for host in (batch, pack_batch(batch)):
        state = replicate(create_train_state(model, tx, 0), jax.devices()[:1])
        state, metrics = step(state, shard_batch(host, 1, config.n_segment))
        results.append((jax.device_get(metrics), unreplicate(state).params))
    (m_loader, p_loader), (m_packed, p_packed) = results
    assert set(m_loader) == set(m_packed) and np.isfinite(m_loader["loss"]).all()
    for key in m_loader:
        np.testing.assert_array_equal(m_packed[key], m_loader[key], err_msg=key)
    jax.tree_util.tree_map(np.testing.assert_array_equal, p_packed, p_loader)
