"""``python -m bigsmall_jax.convert`` and `load_checkpoint` of what it writes."""

import re
from pathlib import Path

import numpy as np
import pytest

from bigsmall_jax import load_checkpoint
from bigsmall_jax.checkpoints.pth import load_state_dict
from bigsmall_jax.convert import main as convert_main

DATA = Path(__file__).parent.parent / "data"


def nhwc(x):
    """(N, C, H, W) PyTorch layout -> (N, H, W, C)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def test_convert_cli_and_load_checkpoint(tmp_path, capsys):
    out_dir = tmp_path / "ckpt"
    convert_main([str(DATA / "bigsmall_random_init.pth"), str(out_dir)])
    assert "bigsmall model" in capsys.readouterr().out
    model, variables = load_checkpoint(out_dir)
    golden = np.load(DATA / "bigsmall_golden.npz")
    out = model.apply(variables, nhwc(golden["big"]), nhwc(golden["small"]))
    np.testing.assert_allclose(np.asarray(out["au"]), golden["au"], atol=1e-4, rtol=0)
    # Writing over an existing checkpoint needs --overwrite.
    with pytest.raises(SystemExit) as exc:
        convert_main([str(DATA / "bigsmall_random_init.pth"), str(out_dir)])
    assert exc.value.code == 2
    assert "already exists" in capsys.readouterr().err


def _c_strides(shape):
    """C-order element strides of `shape`."""
    return tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))


@pytest.mark.parametrize("bad, problem", [
    (dict(stride=(-2**40, 1)), r"tensor 'module.au_fc2.weight': stride \(-1099511627776, 1\) is not a tuple"),
    (dict(offset=-4), r"tensor 'module.au_fc2.weight': storage offset -4 is not a non-negative integer"),
    (dict(size=(2**16, 2**16), stride=(0, 0)), r"tensor 'module.au_fc2.weight': size \(65536, 65536\) holds"),
])
def test_convert_refuses_a_state_dict_with_one_hostile_tensor(tmp_path, capsys, write_pth, bad, problem):
    # The published random-init state dict re-written by hand, every tensor honest but one.
    state = load_state_dict(DATA / "bigsmall_random_init.pth")
    tensors = {k: dict(data=v.ravel(), size=v.shape, stride=_c_strides(v.shape)) for k, v in state.items()}
    honest, hostile = tmp_path / "honest.pth", tmp_path / "hostile.pth"
    write_pth(honest, tensors)
    convert_main([str(honest), str(tmp_path / "honest")])
    assert "bigsmall model" in capsys.readouterr().out
    tensors["module.au_fc2.weight"].update(bad)
    write_pth(hostile, tensors)
    with pytest.raises(SystemExit) as exc:
        convert_main([str(hostile), str(tmp_path / "out")])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith(f"error: {hostile}: ") and re.search(problem, captured.err)
    assert not (tmp_path / "out").exists()


def test_shapes_are_checked_against_the_model_before_any_data_is_read(tmp_path, capsys, write_pth):
    # A 256 MiB au_fc2.weight (within the size limits; it makes the model one of 524288 AUs, which the 12
    # outputs of au_fc2.bias do not fit) whose storage member is not even there: the shape check refuses the
    # file before any storage is looked for.
    state = load_state_dict(DATA / "bigsmall_random_init.pth")
    tensors = {k: dict(data=v.ravel(), size=v.shape, stride=_c_strides(v.shape)) for k, v in state.items()}
    units = state["module.au_fc2.weight"].shape[1]
    tensors["module.au_fc2.weight"] = dict(numel=2**26, size=(2**26 // units, units), stride=(units, 1), missing=True)
    path = tmp_path / "wide.pth"
    write_pth(path, tensors)
    with pytest.raises(SystemExit) as exc:
        convert_main([str(path), str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == (f"error: {path}: key 'au_fc2.bias' has shape (12,), which does not fit au/fc2/bias of shape "
                   f"({2**26 // units},)\n")
    assert not (tmp_path / "out").exists()
