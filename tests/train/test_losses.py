"""The multi-task loss against the PyTorch reference values, closed forms and plain-loop references."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bigsmall_jax.train import losses

DATA = Path(__file__).resolve().parents[1] / "data"


def _mean_losses(outputs, batch, au_pos_weight=None, weights=None):
    """(weighted total, {task: mean over valid labels}) from `losses.task_sums`, as the train step divides
    them (a task without valid labels has mean 0)."""
    per_task = {t: s / max(float(c), 1.0) for t, (s, c) in losses.task_sums(outputs, batch, au_pos_weight).items()}
    return losses.weighted_total(per_task, weights or {}), per_task


def _bce_reference(x: float, y: float, p: float) -> float:
    """PyTorch BCEWithLogitsLoss(pos_weight) for one element, in float64 with the textbook formula."""
    s = 1.0 / (1.0 + math.exp(-x))
    return -(p * y * math.log(s) + (1.0 - y) * math.log(1.0 - s))


def test_bce_matches_textbook_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, size=(7, 5)).astype(np.float32)
    y = (rng.random((7, 5)) > 0.5).astype(np.float32)
    p = rng.uniform(0.3, 20, size=5).astype(np.float32)
    got = np.asarray(losses.bce_with_logits_elementwise(x, y, p))
    want = np.array([[_bce_reference(float(x[i, j]), float(y[i, j]), float(p[j])) for j in range(5)]
                     for i in range(7)])
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


def test_bce_is_finite_for_extreme_logits():
    x = np.array([[-200.0, 200.0, -200.0, 200.0]], np.float32)
    y = np.array([[1.0, 0.0, 0.0, 1.0]], np.float32)
    got = np.asarray(losses.bce_with_logits_elementwise(x, y, np.array([2.0, 1, 1, 1], np.float32)))
    # Confidently wrong: p * |x| and |x|; confidently right: ~0.
    np.testing.assert_allclose(got, [[400.0, 200.0, 0.0, 0.0]], atol=1e-4)


def test_golden_loss_of_the_pytorch_reference():
    """The reference's loss at its initial weights (train_losses[0]) from its own eval-mode outputs."""
    g = np.load(DATA / "bigsmall_golden.npz")
    outputs = {"au": g["au"], "bvp": g["bvp"], "resp": g["resp"]}
    batch = {"au": g["au_label"], "bvp": g["bvp_label"][:, 0], "resp": g["resp_label"][:, 0]}
    total, per_task = _mean_losses(outputs, batch, g["au_pos_weight"])
    want = g["train_losses"][0]
    got = np.array([float(total), float(per_task["au"]), float(per_task["bvp"]), float(per_task["resp"])])
    np.testing.assert_allclose(got, want, rtol=1e-5)


def _random_batch(rng, n=12, k=12, nan_frac=0.3):
    au = (rng.random((n, k)) > 0.6).astype(np.float32)
    au[rng.random((n, k)) < nan_frac] = np.nan
    bvp = rng.normal(size=n).astype(np.float32)
    bvp[rng.random(n) < nan_frac] = np.nan
    resp = rng.normal(size=n).astype(np.float32)
    outputs = {"au": rng.normal(size=(n, k)).astype(np.float32), "bvp": rng.normal(size=(n, 1)).astype(np.float32),
               "resp": rng.normal(size=(n, 1)).astype(np.float32)}
    return outputs, {"au": au, "bvp": bvp, "resp": resp}


def test_nan_labels_are_left_out_of_the_mean():
    rng = np.random.default_rng(1)
    outputs, batch = _random_batch(rng)
    pw = rng.uniform(0.5, 10, 12)
    _, per_task = _mean_losses(outputs, batch, pw)
    au_terms = [_bce_reference(float(outputs["au"][i, j]), float(batch["au"][i, j]), float(pw[j]))
                for i in range(12) for j in range(12) if not np.isnan(batch["au"][i, j])]
    bvp_terms = [(float(outputs["bvp"][i, 0]) - float(batch["bvp"][i])) ** 2 for i in range(12)
                 if not np.isnan(batch["bvp"][i])]
    resp_terms = [(float(outputs["resp"][i, 0]) - float(batch["resp"][i])) ** 2 for i in range(12)]
    assert float(per_task["au"]) == pytest.approx(np.mean(au_terms), rel=1e-5)
    assert float(per_task["bvp"]) == pytest.approx(np.mean(bvp_terms), rel=1e-5)
    assert float(per_task["resp"]) == pytest.approx(np.mean(resp_terms), rel=1e-5)


def test_masks_equal_nan_labels():
    """The input pipeline's masks (labels 0 where masked) give the same loss as NaN labels."""
    rng = np.random.default_rng(2)
    outputs, batch = _random_batch(rng)
    frame_mask = np.ones(12, np.float32)
    frame_mask[-2:] = 0  # padded frames: every label of theirs is ignored
    nan_batch = {k: v.copy() for k, v in batch.items()}
    for v in nan_batch.values():
        v[-2:] = np.nan
    masked = {"frame_mask": frame_mask}
    for k, v in batch.items():
        masked[f"{k}_mask"] = np.isfinite(v).astype(np.float32)
        masked[k] = np.nan_to_num(v, nan=0.0)
    a = losses.task_sums(outputs, nan_batch)
    b = losses.task_sums(outputs, masked)
    for task in losses.TASKS:
        np.testing.assert_allclose([float(a[task][0]), float(a[task][1])], [float(b[task][0]), float(b[task][1])],
                                   rtol=1e-6)
    assert float(b["resp"][1]) == 10  # 12 frames, 2 padded


def test_sums_over_splits_give_the_global_mean():
    """What the data-parallel step relies on: (sum of per-shard sums) / (sum of counts) = full-batch mean."""
    rng = np.random.default_rng(3)
    outputs, batch = _random_batch(rng, n=12, nan_frac=0.5)
    full = losses.task_sums(outputs, batch)
    parts = [losses.task_sums({k: v[i:i + 3] for k, v in outputs.items()}, {k: v[i:i + 3] for k, v in batch.items()})
             for i in range(0, 12, 3)]
    for task in losses.TASKS:
        s = sum(float(p[task][0]) for p in parts)
        c = sum(float(p[task][1]) for p in parts)
        assert s / c == pytest.approx(float(full[task][0]) / float(full[task][1]), rel=1e-6)


def test_all_labels_missing_gives_zero_loss():
    outputs = {"bvp": np.ones((3, 1), np.float32)}
    total, per_task = _mean_losses(outputs, {"bvp": np.full(3, np.nan, np.float32)})
    assert float(total) == 0.0 and float(per_task["bvp"]) == 0.0


def test_task_weights_and_absent_heads():
    rng = np.random.default_rng(4)
    outputs, batch = _random_batch(rng, nan_frac=0.0)
    del outputs["au"]  # a Small-pathway model: no AU head, the AU labels are ignored
    total, per_task = _mean_losses(outputs, batch, weights={"bvp": 2.0, "resp": 0.5})
    assert set(per_task) == {"bvp", "resp"}
    assert float(total) == pytest.approx(2.0 * float(per_task["bvp"]) + 0.5 * float(per_task["resp"]), rel=1e-6)
