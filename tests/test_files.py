"""bigsmall_jax.files: writes are all-or-nothing, leave no temporary files and get ordinary permissions."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import stat

import numpy as np
import pytest

from bigsmall_jax import files
from bigsmall_jax.errors import UserError


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _expected_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def test_write_json_atomic_writes_numpy_values_and_ordinary_permissions(tmp_path):
    path = tmp_path / "out.json"
    files.write_json_atomic(path, {"b": np.float32(1.5), "a": np.arange(3), "c": (1, 2)})
    assert json.loads(path.read_text()) == {"a": [0, 1, 2], "b": 1.5, "c": [1, 2]}
    assert path.read_text().endswith("\n") and path.read_text().index('"a"') < path.read_text().index('"b"')
    assert _mode(path) == _expected_mode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_to_json_strict_and_one_line():
    assert files.to_json({"x": [1, 2]}, indent=None) == '{"x": [1, 2]}\n'
    with pytest.raises(ValueError):
        files.to_json({"x": float("nan")}, allow_nan=False)
    with pytest.raises(TypeError):
        files.to_json({"x": object()})


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        files.write_json_atomic(path, {"x": object()})
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_path_names_a_missing_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        files.write_text_atomic(tmp_path / "missing" / "a.txt", "x")


def test_atomic_directory_replaces_only_when_complete(tmp_path):
    target = tmp_path / "model"
    with files.atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
    assert (target / "a").read_text() == "1"
    with pytest.raises(UserError, match="already exists"):
        with files.atomic_directory(target):
            pass
    with pytest.raises(RuntimeError), files.atomic_directory(target, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["a"]  # the old one stays whole
    with files.atomic_directory(target, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_staged_outputs_commits_all_files_or_none(tmp_path):
    with files.staged_outputs(tmp_path) as stage:
        (stage / "r.json").write_text("{}")
        (stage / "r_plot.png").write_bytes(b"png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r_plot.png"]
    out = tmp_path / "second"
    out.mkdir()
    with pytest.raises(RuntimeError), files.staged_outputs(out) as stage:
        (stage / "x.png").write_bytes(b"png")
        raise RuntimeError("failed before the JSON")
    assert list(out.iterdir()) == []


# Places that refuse new files even to root, which `os.access` does not see: /proc, and a path under a file.
UNWRITABLE = ["/proc", "/proc/sys"]


@pytest.mark.parametrize("folder", UNWRITABLE)
def test_probe_writable_refuses_what_root_cannot_write(folder):
    with pytest.raises(UserError, match=f"^{folder}: cannot write into the folder"):
        files.probe_writable(folder, "the folder")


def test_probe_writable_leaves_nothing(tmp_path):
    assert files.probe_writable(tmp_path) == tmp_path and list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="does not exist"):
        files.probe_writable(tmp_path / "f")


@contextlib.contextmanager
def _file_size_limit(n_bytes: int):
    """Writes beyond `n_bytes` fail with EFBIG, as on a full disk (Python ignores SIGXFSZ; root too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_full_disk_is_one_user_error_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    with _file_size_limit(100), pytest.raises(UserError, match=f"^{path}: cannot write it"):
        files.write_json_atomic(path, {"x": list(range(1000))})
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    with _file_size_limit(100), pytest.raises(UserError, match=f"^{tmp_path}: cannot write it"):
        with files.staged_outputs(tmp_path) as tmp:
            (tmp / "big.json").write_text("x" * 1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_remove_temporaries_removes_only_the_named_targets_temporaries(tmp_path):
    names = [".model.123.0a1b2c3d", ".model.123.0a1b2c3d.old", ".loss.png.9.deadbeef.png", ".a.json.1.00000000.tmp",
             ".other.json.1.00000000.tmp", "model", ".model.x.0a1b2c3d", ".model.123.0A1B2C3D"]
    for name in names:
        (tmp_path / name).mkdir() if "png" not in name and "json" not in name else (tmp_path / name).write_text("")
    removed = files.remove_temporaries(tmp_path, lambda n: n in ("model", "loss.png", "a.json"))
    assert removed == sorted([".a.json.1.00000000.tmp", ".loss.png.9.deadbeef.png", ".model.123.0a1b2c3d",
                              ".model.123.0a1b2c3d.old"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".other.json.1.00000000.tmp", "model",
                                                                 ".model.x.0a1b2c3d", ".model.123.0A1B2C3D"])
