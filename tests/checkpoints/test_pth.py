"""The torch-free .pth reader: hostile pickles are refused, never run; broken files are clear errors."""

import pickle
import zipfile
from pathlib import Path

import pytest

from bigsmall_jax.checkpoints.pth import load_state_dict
from bigsmall_jax.convert import main as convert_main
from bigsmall_jax.errors import UserError

DATA = Path(__file__).parent.parent / "data"


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_PICKLE",))


def _zip_with_pickle(path, payload: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")


def test_hostile_pickle_is_refused_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    _zip_with_pickle(evil, pickle.dumps({"module.big_conv1.weight": _Evil()}, protocol=2))
    with pytest.raises(UserError, match="refusing to load global 'posix.system'|refusing to load global 'os.system'"):
        load_state_dict(evil)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    with pytest.raises(SystemExit):
        convert_main([str(evil), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists() and not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_truncated_and_non_zip_files_are_clear_errors(tmp_path):
    data = (DATA / "bigsmall_random_init.pth").read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated.pth"):
        load_state_dict(truncated)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="garbage.pth: not a PyTorch zip checkpoint"):
        load_state_dict(garbage)
    with pytest.raises(UserError, match="no such checkpoint file"):
        load_state_dict(tmp_path / "missing.pth")
