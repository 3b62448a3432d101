"""Helpers the training tests share: subprocess environments, tiny runs, a narrow model, PCGrad by loops.

Test files of this folder import it as ``from train_helpers import ...`` (pytest puts a test file's folder
on ``sys.path``).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np

from bigsmall_jax.model import ModelConfig, build_model

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = ["model.big_filters=(4,4,4,8,8,8)", "model.small_filters=(4,4,4,8)", "model.dense_units=8"]


def subprocess_env(**extra) -> dict:
    """This environment with the repository on PYTHONPATH (and `extra` variables), for subprocesses."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def tiny_overrides(data_dir, builder, *extra) -> list[str]:
    """Overrides that train a tiny model on the session's tiny synthetic dataset (see conftest.py)."""
    settings = {**builder.builder_config.synthetic, "tail": builder.builder_config.tail}
    return [f"dataset.data_dir={str(data_dir)!r}", f"dataset.settings={settings!r}", *TINY_MODEL,
            "train.batch_clips=4", "train.num_epochs=2", "train.steps_per_epoch=5", "train.checkpoint_every_steps=2",
            "train.eval_batch_clips=8", "optim.schedule='warmup_cosine'", "optim.warmup_steps=2", "train.init='flax'",
            *extra]


def pcgrad_loop(grads: list[np.ndarray], order: list[int]) -> np.ndarray:
    """PCGrad as written in Yu et al. (2020), Algorithm 1, with plain Python loops."""
    out = []
    for i, g in enumerate(grads):
        gi = g.astype(np.float64).copy()
        for j in order:
            if j == i:
                continue
            gj = grads[j].astype(np.float64)
            dot = float(gi @ gj)
            if dot < 0:
                gi = gi - dot / float(gj @ gj) * gj
        out.append(gi)
    return np.sum(out, axis=0)


def narrow_model_and_batch(n_frames: int, seed: int):
    """A narrow BigSmall without dropout and a random batch of `n_frames` frames with every label."""
    model = build_model(ModelConfig(big_filters=(4, 4, 4, 8, 8, 8), small_filters=(4, 4, 4, 8), dense_units=8,
                                    dropout=(0.0, 0.0, 0.0)))
    rng = np.random.default_rng(seed)
    batch = {"big": rng.normal(size=(n_frames, 144, 144, 3)).astype(np.float32),
             "small": rng.normal(size=(n_frames, 9, 9, 3)).astype(np.float32),
             "au": (rng.random((n_frames, 12)) > 0.5).astype(np.float32),
             "bvp": rng.normal(size=n_frames).astype(np.float32), "resp": rng.normal(size=n_frames).astype(np.float32)}
    return model, batch


def flat_params(params) -> np.ndarray:
    """Every leaf of a params pytree, raveled and concatenated (tree order)."""
    return np.concatenate([np.asarray(x).ravel() for x in jax.tree_util.tree_leaves(params)])
