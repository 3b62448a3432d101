"""PyTorch state dicts -> Flax variables: parity with the published implementation, the task of a Small
pathway, and missing, extra or mis-shaped keys named."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from bigsmall_jax.checkpoints.pth import load_state_dict
from bigsmall_jax.checkpoints.torch_import import _strip_prefix, convert_file, infer_config, state_dict_to_variables
from bigsmall_jax.errors import UserError
from bigsmall_jax.model import build_model

DATA = Path(__file__).parent.parent / "data"
PATHWAYS = [
    ("BP4D_Big_AU_Clip3_Split1_Epoch4.pth", "au", "big_au"),
    ("BP4D_Small_Heart_Clip3_Split1_Epoch4.pth", "bvp", "small_heart"),
    ("BP4D_Small_Resp_Clip3_Split1_Epoch4.pth", "resp", "small_resp"),
]


def nhwc(x):
    """(N, C, H, W) PyTorch layout -> (N, H, W, C)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def test_multitask_parity_with_pytorch():
    config, variables = convert_file(DATA / "bigsmall_random_init.pth")
    assert config.variant == "bigsmall" and config.n_au == 12 and config.bvp and config.resp
    golden = np.load(DATA / "bigsmall_golden.npz")
    out = build_model(config).apply(variables, nhwc(golden["big"]), nhwc(golden["small"]))
    assert set(out) == {"au", "bvp", "resp"}
    for key in ("au", "bvp", "resp"):
        np.testing.assert_allclose(np.asarray(out[key]), golden[key], atol=1e-4, rtol=0)


@pytest.mark.parametrize("filename,task,golden_key", PATHWAYS)
def test_published_pathway_checkpoints_parity(filename, task, golden_key):
    config, variables = convert_file(DATA / filename)
    golden = np.load(DATA / "pathways_golden.npz")
    n = golden["big_input"].shape[0] if task == "au" else golden["small_input"].shape[0]
    big = nhwc(golden["big_input"]) if task == "au" else np.zeros((n, 144, 144, 3), np.float32)
    small = nhwc(golden["small_input"]) if task != "au" else np.zeros((n, 9, 9, 3), np.float32)
    out = build_model(config).apply(variables, big, small)
    assert list(out) == [task]
    np.testing.assert_allclose(np.asarray(out[task]), golden[golden_key], atol=1e-4, rtol=0)


def test_small_pathway_task_from_flag_and_filename(tmp_path):
    heart = DATA / "BP4D_Small_Heart_Clip3_Split1_Epoch4.pth"
    assert convert_file(heart)[0].heads == (("bvp", 1),)
    assert convert_file(heart, task="resp")[0].heads == (("resp", 1),)
    anonymous = tmp_path / "pathway.pth"
    anonymous.write_bytes(heart.read_bytes())
    assert convert_file(anonymous)[0].heads == (("bvp", 1),)  # default: pulse


def _rewrite_state(tmp_path, edit) -> Path:
    """A copy of the random-init checkpoint with its pickle re-written by `edit(state_dict_pickle_objects)`."""
    src = DATA / "bigsmall_random_init.pth"
    out = tmp_path / "edited.pth"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item.endswith("data.pkl"):
                data = edit(data)
            zout.writestr(item, data)
    return out


def test_missing_extra_and_misshaped_keys_are_named(tmp_path):
    # Drop a key: rename it in the pickle bytes, which makes it both missing and extra.
    renamed = _rewrite_state(tmp_path, lambda d: d.replace(b"module.resp_fc2.bias", b"module.resp_fc9.bias"))
    with pytest.raises(UserError, match=r"resp_fc2\.bias"):
        convert_file(renamed)
    state = load_state_dict(DATA / "bigsmall_random_init.pth")
    state = _strip_prefix(state)
    config = infer_config(state)
    extra = dict(state, **{"bonus.weight": np.zeros(3, np.float32)})
    with pytest.raises(UserError, match=r"unexpected key\(s\) \['bonus.weight'\]"):
        state_dict_to_variables(extra, config)
    wrong = dict(state, **{"small_conv2.weight": np.zeros((32, 32, 5, 5), np.float32)})
    with pytest.raises(UserError, match=r"small_conv2\.weight' has shape \(32, 32, 5, 5\)"):
        state_dict_to_variables(wrong, config)
