"""The orbax model directory: wrong or hostile configs are refused, and nothing in it is a pickle."""

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from bigsmall_jax import load_checkpoint
from bigsmall_jax.checkpoints.model_dir import CONFIG_FILE, save_checkpoint
from bigsmall_jax.checkpoints.torch_import import convert_file
from bigsmall_jax.errors import UserError
from bigsmall_jax.model import ModelConfig

DATA = Path(__file__).parent.parent / "data"


def test_hostile_or_wrong_checkpoint_directory(tmp_path):
    config, variables = convert_file(DATA / "BP4D_Small_Resp_Clip3_Split1_Epoch4.pth")
    ckpt = save_checkpoint(tmp_path / "resp", config, variables)
    payload = json.loads((ckpt / CONFIG_FILE).read_text())
    payload["model"]["evil"] = "__import__('os')"
    (ckpt / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(UserError, match=r"unknown model config key\(s\) \['evil'\]"):
        load_checkpoint(ckpt)
    # A config that does not match the stored arrays (a BigSmall config over a pathway's arrays).
    payload["model"] = ModelConfig().to_dict()
    (ckpt / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(UserError, match="missing array"):
        load_checkpoint(ckpt)
    with pytest.raises(UserError, match="not a bigsmall-jax checkpoint directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(UserError, match="no such checkpoint directory"):
        load_checkpoint(tmp_path / "nope")


def test_pickle_module_is_not_used_for_orbax_checkpoints(tmp_path):
    """The checkpoint directory holds JSON and tensorstore data only: no pickle opcodes anywhere."""
    config, variables = convert_file(DATA / "BP4D_Small_Heart_Clip3_Split1_Epoch4.pth")
    ckpt = save_checkpoint(tmp_path / "heart", config, variables)
    for f in ckpt.rglob("*"):
        if f.is_file():
            head = f.read_bytes()[:2]
            assert head not in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"), f


@pytest.fixture(scope="module")
def resp_ckpt(tmp_path_factory):
    config, variables = convert_file(DATA / "BP4D_Small_Resp_Clip3_Split1_Epoch4.pth")
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "resp", config, variables)


@pytest.mark.parametrize("key, value, message", [
    ("n_segment", "abc", "n_segment must be an integer"),
    ("n_segment", 3.5, "n_segment must be an integer"),
    ("big_pools", [2, 0, 4], "big_pools must be a non-empty list of integers >= 1"),
    ("fold_div", 0, "fold_div must be >= 2"),
    ("dense_units", "abc", "dense_units must be an integer"),
    ("metadata", [1, 2], "'metadata' must be a JSON object, got list"),
])
def test_bad_values_in_the_config_file_name_it(resp_ckpt, tmp_path, key, value, message):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(resp_ckpt, ckpt)
    payload = json.loads((ckpt / CONFIG_FILE).read_text())
    (payload if key == "metadata" else payload["model"])[key] = value
    (ckpt / CONFIG_FILE).write_text(json.dumps(payload))
    with pytest.raises(UserError) as err:
        load_checkpoint(ckpt)
    assert str(err.value).startswith(f"{ckpt / CONFIG_FILE}: ") and message in str(err.value)


def test_too_little_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    from bigsmall_jax.checkpoints import model_dir

    config, variables = convert_file(DATA / "BP4D_Small_Resp_Clip3_Split1_Epoch4.pth")
    needed = sum(x.nbytes for x in jax.tree_util.tree_leaves(variables)) + 2**20
    real = model_dir.shutil.disk_usage
    monkeypatch.setattr(model_dir.shutil, "disk_usage", lambda p: real(p)._replace(free=needed - 1))
    with pytest.raises(UserError, match=rf"^{tmp_path / 'ckpt'}: not enough free space: the checkpoint needs"):
        save_checkpoint(tmp_path / "ckpt", config, variables)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(model_dir.shutil, "disk_usage", lambda p: real(p)._replace(free=needed))
    save_checkpoint(tmp_path / "ckpt", config, variables)
    assert load_checkpoint(tmp_path / "ckpt")[0].config == config


def test_truncated_variables_are_one_error_naming_them(resp_ckpt, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(resp_ckpt, ckpt)
    for f in (ckpt / "variables").rglob("d/*"):
        f.write_bytes(f.read_bytes()[:10])
    with pytest.raises(UserError) as err:
        load_checkpoint(ckpt)
    assert str(err.value).startswith(f"{ckpt / 'variables'}: cannot restore the variables")
    assert "tensorstore_spec" not in str(err.value) and len(str(err.value)) < 400


def test_every_value_is_read_before_a_restore(resp_ckpt, tmp_path):
    """`read_every_value` reads the whole item synchronously: all of it when intact (at least the float32
    parameters, which compress little), one exception naming the damaged file otherwise."""
    from bigsmall_jax.checkpoints.model_dir import read_every_value

    ckpt = tmp_path / "ckpt"
    shutil.copytree(resp_ckpt, ckpt)
    _, variables = load_checkpoint(ckpt)
    n_bytes = sum(np.asarray(v).nbytes for v in jax.tree_util.tree_leaves(variables))
    assert read_every_value(ckpt / "variables") >= 0.5 * n_bytes
    assert read_every_value(tmp_path) == 0  # no OCDBT manifest: left to the restore
    for f in (ckpt / "variables").rglob("d/*"):
        f.write_bytes(f.read_bytes()[:10])
    with pytest.raises(ValueError, match=rf"local file \"{ckpt / 'variables'}/d/\w+\": .* not valid"):
        read_every_value(ckpt / "variables")
