"""``convert --variant``: the authors' class names, the variants the keys decide, and a file that does not
fit the named variant (an error naming the key)."""

from pathlib import Path

import numpy as np
import pytest
from cli_checks import expect_one_error_line

from bigsmall_jax import load_checkpoint
from bigsmall_jax.checkpoints.pth import load_state_dict
from bigsmall_jax.checkpoints.torch_import import convert_file
from bigsmall_jax.convert import main as convert_main
from bigsmall_jax.errors import UserError
from bigsmall_jax.model import named_config

DATA = Path(__file__).parent.parent / "data"
RANDOM_INIT = DATA / "bigsmall_random_init.pth"


def _c_strides(shape):
    return tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))


@pytest.fixture
def bidir_pth(tmp_path, write_pth):
    """A .pth with BSSFWTSM_BiDirLatConn's keys and shapes: its reference conv weights (variants_golden.npz),
    the heads of the multitask random-init file."""
    golden = np.load(DATA / "variants_golden.npz")
    state = {k.split("/", 1)[1]: golden[k] for k in golden.files if k.startswith("BSSFWTSM_BiDirLatConn/")
             and "_conv" in k}
    heads = {k[len("module."):]: v for k, v in load_state_dict(RANDOM_INIT).items() if "_fc" in k}
    state.update(heads)
    path = tmp_path / "lateral.pth"
    write_pth(path, {k: dict(data=np.asarray(v, np.float32).ravel(), size=tuple(v.shape),
                            stride=_c_strides(v.shape)) for k, v in state.items()})
    return path


def test_keys_decide_the_lateral_variant_and_the_class_name_agrees(tmp_path, capsys, bidir_pth):
    config, _ = convert_file(bidir_pth)
    assert config.lateral == "both"
    out_dir = tmp_path / "bidir"
    convert_main([str(bidir_pth), str(out_dir), "--variant", "BSSFWTSM_BiDirLatConn"])
    assert "(bigsmall_bidir)" in capsys.readouterr().out
    model, _ = load_checkpoint(out_dir)
    assert model.config == named_config("bigsmall_bidir")


@pytest.mark.parametrize("variant,config_fields", [
    ("BigSmallSlowFastTSM", {"shift": "zero"}),
    ("bigsmall_base", {"shift": "none", "big_downsample": False}),
    ("BigSmallWTSM", {"shift": "wrap", "big_downsample": False}),
])
def test_variant_names_what_the_keys_cannot_tell(variant, config_fields):
    assert convert_file(RANDOM_INIT)[0] == named_config("bigsmall")  # the keys alone: the paper's model
    config, _ = convert_file(RANDOM_INIT, variant=variant)
    assert all(getattr(config, k) == v for k, v in config_fields.items())


def test_a_file_that_does_not_fit_the_variant_is_an_error_naming_the_key(tmp_path, capsys, bidir_pth):
    out = tmp_path / "out"
    out.mkdir()
    expect_one_error_line(capsys, convert_main, [RANDOM_INIT, out / "ckpt", "--variant", "BSSFWTSM_BiDirLatConn"],
                          out, str(RANDOM_INIT), "key 'big_conv3.weight' has shape (32, 32, 3, 3)")
    expect_one_error_line(capsys, convert_main, [bidir_pth, out / "ckpt", "--variant", "bigsmall"], out,
                          "key 'big_conv3.weight' has shape (32, 64, 3, 3)")
    expect_one_error_line(capsys, convert_main, [RANDOM_INIT, out / "ckpt", "--variant", "BigSmallLSTM"], out,
                          "unknown model variant 'BigSmallLSTM'")


def test_small_pathway_class_takes_the_task():
    heart = DATA / "BP4D_Small_Heart_Clip3_Split1_Epoch4.pth"
    assert convert_file(heart, variant="SmallPathwayBaseModel")[0].heads == (("bvp", 1),)
    assert convert_file(heart, task="resp", variant="SmallPathwayBaseModel")[0].heads == (("resp", 1),)
    with pytest.raises(UserError, match="variant 'small_bvp' predicts bvp, not 'resp'"):
        convert_file(heart, task="resp", variant="small_bvp")
    with pytest.raises(UserError, match="Big_AU_Clip3_Split1_Epoch4.pth: key '"):
        convert_file(DATA / "BP4D_Big_AU_Clip3_Split1_Epoch4.pth", variant="SmallPathwayBaseModel")
