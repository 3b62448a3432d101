"""``python -m bigsmall_jax.convert`` and `load_checkpoint` of what it writes."""

import re
from pathlib import Path

import numpy as np
import pytest
from cli_checks import expect_nothing_changed

from bigsmall_jax import load_checkpoint
from bigsmall_jax.checkpoints.model_dir import CONFIG_FILE, VARIABLES_DIR, save_checkpoint
from bigsmall_jax.checkpoints.pth import load_state_dict
from bigsmall_jax.checkpoints.torch_import import convert_file
from bigsmall_jax.convert import main as convert_main
from bigsmall_jax.errors import UserError

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


@pytest.fixture
def pth_folder(tmp_path) -> Path:
    """A folder holding a copy of the random-init .pth and an unrelated file."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "model.pth").write_bytes((DATA / "bigsmall_random_init.pth").read_bytes())
    (folder / "notes.txt").write_text("mine")
    return folder


def test_convert_refuses_the_current_directory_and_the_source(pth_folder, capsys, monkeypatch):
    monkeypatch.chdir(pth_folder)
    expect_nothing_changed(capsys, convert_main, ["model.pth", ".", "--overwrite"], pth_folder.parent,
                           "error: .: is the current directory")
    expect_nothing_changed(capsys, convert_main, ["model.pth", "model.pth", "--overwrite"], pth_folder.parent,
                           "error: model.pth: is the source file")
    monkeypatch.chdir(pth_folder.parent.parent)  # the folders holding the source, not the current directory
    for ancestor in (pth_folder, pth_folder.parent):
        expect_nothing_changed(capsys, convert_main, [pth_folder / "model.pth", ancestor, "--overwrite"],
                               pth_folder.parent, f"error: {ancestor}: holds the source file")


def test_convert_overwrite_replaces_only_a_model_directory(pth_folder, tmp_path, capsys):
    src = pth_folder / "model.pth"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("a,b")
    expect_nothing_changed(capsys, convert_main, [src, foreign, "--overwrite"], tmp_path,
                           f"error: {foreign}: is not a model checkpoint directory (it holds data.csv)")
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    expect_nothing_changed(capsys, convert_main, [src, a_file, "--overwrite"], tmp_path,
                           f"error: {a_file}: exists and is not a directory")
    # A model directory with one more file is not one this project wrote.
    ckpt = tmp_path / "ckpt"
    convert_main([str(src), str(ckpt)])
    (ckpt / "extra.txt").write_text("mine")
    expect_nothing_changed(capsys, convert_main, [src, ckpt, "--overwrite"], tmp_path,
                           f"error: {ckpt}: is not a model checkpoint directory (it holds extra.txt)")
    # An empty directory and a model directory are replaced.
    (ckpt / "extra.txt").unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (ckpt, empty):
        convert_main([str(src), str(out), "--overwrite"])
        assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_FILE, VARIABLES_DIR])
    capsys.readouterr()


def test_save_checkpoint_overwrite_replaces_only_a_model_directory(tmp_path):
    # The check is in save_checkpoint, so training's model export gets it too.
    config, variables = convert_file(DATA / "bigsmall_random_init.pth")
    foreign = tmp_path / "model"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="is not a model checkpoint directory"):
        save_checkpoint(foreign, config, variables, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_convert_to_a_place_that_cannot_be_written_fails_before_reading(pth_folder, tmp_path, capsys):
    """/proc refuses new folders even to root (orbax would otherwise retry for minutes); a file is no folder."""
    src = pth_folder / "model.pth"
    expect_nothing_changed(capsys, convert_main, [src, "/proc/ckpt"], tmp_path,
                           "error: /proc/ckpt: OUT_DIR cannot be written")
    (tmp_path / "a_file").write_text("keep")
    expect_nothing_changed(capsys, convert_main, [src, tmp_path / "a_file" / "ckpt"], tmp_path,
                           f"OUT_DIR cannot be created: {tmp_path / 'a_file'} is a file")
