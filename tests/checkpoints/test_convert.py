"""``python -m bigsmall_jax.convert`` and `load_checkpoint` of what it writes."""

from pathlib import Path

import numpy as np
import pytest

from bigsmall_jax import load_checkpoint
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
