"""The initial train state: PyTorch-style and Flax-default initial weights."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from bigsmall_jax.checkpoints.torch_import import convert_file
from bigsmall_jax.errors import UserError
from bigsmall_jax.model import ModelConfig, build_model
from bigsmall_jax.train.state import create_train_state

DATA = Path(__file__).resolve().parents[1] / "data"


def test_torch_style_init_matches_the_pytorch_reference_init():
    """train.init='torch' draws like PyTorch's defaults: the reference file holds such a draw."""
    mc, ref = convert_file(DATA / "bigsmall_random_init.pth")
    model = build_model(mc)
    ours = create_train_state(model, optax.sgd(0.1), 0, init="torch").params
    flax_default = create_train_state(model, optax.sgd(0.1), 0).params
    fan_in = {path[:-1]: int(np.prod(np.shape(leaf)[:-1]))
              for path, leaf in jax.tree_util.tree_flatten_with_path(ref["params"])[0] if path[-1].key == "kernel"}
    checked = 0
    for path, r in jax.tree_util.tree_flatten_with_path(ref["params"])[0]:
        o = np.asarray(_get(ours, path))
        f = np.asarray(_get(flax_default, path))
        bound = 1.0 / np.sqrt(fan_in[path[:-1]])
        r = np.asarray(r)
        assert np.abs(r).max() <= bound * (1 + 1e-6) and np.abs(o).max() <= bound * (1 + 1e-6)
        if r.size >= 300:  # uniform(-b, b): std b / sqrt(3), as in the reference draw
            assert np.std(o) == pytest.approx(np.std(r), rel=0.1)
            if path[-1].key == "kernel":
                assert np.std(f) == pytest.approx(np.sqrt(3) * np.std(r), rel=0.15)  # Flax's lecun_normal
            checked += 1
    assert checked >= 12


def _get(tree, path):
    for k in path:
        tree = tree[k.key]
    return tree


def test_bp4d_fold1_init_is_the_published_weights_layer_by_layer():
    """train.init='bp4d-fold1': each BigSmall layer holds the converted weights of the published model
    that trained it (read here from the .pth files themselves, not from the shipped npz)."""
    state = create_train_state(build_model(ModelConfig()), optax.adamw(1e-3), 0, init="bp4d-fold1")
    au = convert_file(DATA / "BP4D_Big_AU_Clip3_Split1_Epoch4.pth")[1]["params"]
    heart = convert_file(DATA / "BP4D_Small_Heart_Clip3_Split1_Epoch4.pth")[1]["params"]
    resp = convert_file(DATA / "BP4D_Small_Resp_Clip3_Split1_Epoch4.pth")[1]["params"]
    want = {"big": au["big"], "au": au["au"], "small": heart["small"], "bvp": heart["bvp"], "resp": resp["resp"]}
    assert set(state.params) == set(want)
    for group, tree in want.items():
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-7),
                               state.params[group], tree)
    narrow = ModelConfig(big_filters=(16, 16, 16, 64, 64, 64))
    with pytest.raises(UserError, match="'big' has no published counterpart"):
        create_train_state(build_model(narrow), optax.adamw(1e-3), 0, init="bp4d-fold1")
