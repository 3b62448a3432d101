"""The orbax model directory: wrong or hostile configs are refused, and nothing in it is a pickle."""

import json
from pathlib import Path

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
