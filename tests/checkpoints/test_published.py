"""The shipped published model: its arrays are the published .pth files', it matches the PyTorch outputs, it
loads by name as one model, it ships in the wheel, and a damaged copy is refused."""

import json
import shutil
import tomllib
from pathlib import Path

import jax
import numpy as np
import pytest

from bigsmall_jax.checkpoints import load_checkpoint, published
from bigsmall_jax.checkpoints.torch_import import convert_file
from bigsmall_jax.errors import UserError

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"


def nhwc(x):
    return np.ascontiguousarray(np.asarray(x).transpose(0, 2, 3, 1))


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint("bp4d-fold1")


def test_one_jitted_forward_matches_the_pytorch_outputs(shipped):
    model, variables = shipped
    golden = np.load(DATA / "pathways_golden.npz")
    big, small = nhwc(golden["big_input"]), nhwc(golden["small_input"])
    big = np.concatenate([big, big[: small.shape[0] - big.shape[0]]])  # as many Big frames as Small ones
    out = jax.jit(lambda v, b, s: model.apply(v, b, s))(variables, big, small)
    assert set(out) == {"au", "bvp", "resp"}
    n_big = golden["big_input"].shape[0]
    np.testing.assert_allclose(np.asarray(out["au"])[:n_big], golden["big_au"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(out["bvp"]), golden["small_heart"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(out["resp"]), golden["small_resp"], atol=1e-4, rtol=0)


def test_shipped_arrays_are_the_published_files(shipped):
    _, variables = shipped
    for task, name in published.SOURCE_FILES.items():
        _, part = convert_file(DATA / name, task=None if task == "au" else task)
        branch = "big" if task == "au" else "small"
        mine = variables["params"]["big" if task == "au" else f"small_{task}"]
        for got, want in zip(jax.tree_util.tree_leaves(mine), jax.tree_util.tree_leaves(part["params"][branch]),
                             strict=True):
            np.testing.assert_array_equal(np.asarray(got), want)
        for got, want in zip(jax.tree_util.tree_leaves(variables["params"][task]),
                             jax.tree_util.tree_leaves(part["params"][task]), strict=True):
            np.testing.assert_array_equal(np.asarray(got), want)


def test_listed_licensed_and_in_the_wheel():
    assert "bp4d-fold1" in published.list_models()
    weights = REPO / "bigsmall_jax" / "weights"
    assert "MIT License" in (weights / "LICENSE").read_text()
    card = (weights / "MODEL_CARD.md").read_text()
    assert "BP4D+" in card and "fold 1" in card and "Known limits" in card
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "bigsmall_jax.weights" in tool["packages"]
    patterns = tool["package-data"]["bigsmall_jax.weights"]
    for f in weights.iterdir():
        if f.suffix != ".py" and f.name != "__pycache__":
            assert any(f.match(p) for p in patterns), f.name
    assert sum(f.stat().st_size for f in weights.iterdir() if f.is_file()) < 10e6


def _damaged_copy(tmp_path, monkeypatch, edit):
    """The weights package copied into `tmp_path`, `edit(folder)` applied, and the loader pointed at it."""
    folder = tmp_path / "weights"
    shutil.copytree(REPO / "bigsmall_jax" / "weights", folder)
    edit(folder)
    monkeypatch.setattr(published, "_weights_dir", lambda: folder)


def test_pickled_or_missing_arrays_are_refused(tmp_path, monkeypatch):
    def pickled(folder):
        with np.load(folder / "bp4d_fold1.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["params/au/fc2/bias"] = np.array([object()], dtype=object)
        np.savez(folder / "bp4d_fold1.npz", **arrays)

    _damaged_copy(tmp_path, monkeypatch, pickled)
    with pytest.raises(UserError, match="bp4d_fold1.npz: cannot read the shipped weights"):
        published.load_published("bp4d-fold1")

    def missing(folder):
        with np.load(folder / "bp4d_fold1.npz") as npz:
            arrays = {k: npz[k] for k in npz.files if k != "params/resp/fc2/kernel"}
        np.savez(folder / "bp4d_fold1.npz", **arrays)

    _damaged_copy(tmp_path / "b", monkeypatch, missing)
    with pytest.raises(UserError, match=r"missing array.*resp.*fc2.*kernel"):
        published.load_published("bp4d-fold1")

    def bad_config(folder):
        payload = json.loads((folder / "bp4d_fold1.json").read_text())
        payload["model"]["colour"] = "red"
        (folder / "bp4d_fold1.json").write_text(json.dumps(payload))

    _damaged_copy(tmp_path / "c", monkeypatch, bad_config)
    with pytest.raises(UserError, match="unknown model config key"):
        published.load_published("bp4d-fold1")


def test_a_local_path_of_the_same_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bp4d-fold1").mkdir()
    with pytest.raises(UserError, match="not a bigsmall-jax checkpoint directory"):
        load_checkpoint("bp4d-fold1")
