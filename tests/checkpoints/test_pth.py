"""The torch-free .pth reader: hostile pickles are refused, never run; broken files are clear errors."""

import pickle
import re
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bigsmall_jax.checkpoints.pth import MiB, load_state_dict
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


def _load_one_error(path) -> str:
    """The message of the one `UserError` loading `path` raises: one line, naming the file."""
    with pytest.raises(UserError) as exc:
        load_state_dict(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def _peak_bytes(func) -> int:
    """Peak bytes allocated (Python and NumPy) while `func` runs."""
    tracemalloc.start()
    try:
        func()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_published_checkpoints_load_bit_identical_to_their_raw_storages():
    # Every tensor of the published files is a contiguous float32 view at offset 0 of its own storage.
    for path in sorted(DATA.glob("*.pth")):
        state = load_state_dict(path)
        with zipfile.ZipFile(path) as z:
            storages = sorted((n for n in z.namelist() if "/data/" in n), key=lambda n: int(n.rsplit("/", 1)[1]))
            raw = [np.frombuffer(z.read(n), "<f4") for n in storages]
        assert len(raw) == len(state)
        for value, flat in zip(state.values(), raw, strict=True):
            assert value.dtype == np.float32 and np.array_equal(value.ravel(), flat, equal_nan=True)


def test_valid_strided_views_are_built_exactly(tmp_path, write_pth):
    data = np.arange(12, dtype=np.float32)
    path = tmp_path / "views.pth"
    write_pth(path, {
        "contiguous": dict(data=data, size=(3, 4), stride=(4, 1)),
        "transposed": dict(data=data, size=(4, 3), stride=(1, 4)),
        "broadcast": dict(data=data[:4], size=(3, 4), stride=(0, 1)),
        "offset": dict(data=data, size=(2, 2), stride=(2, 1), offset=5),
        "scalar": dict(data=data, size=(), stride=(), offset=3),
        "empty": dict(data=data[:0], size=(0, 5), stride=(5, 1)),
    })
    state = load_state_dict(path)
    np.testing.assert_array_equal(state["contiguous"], data.reshape(3, 4))
    np.testing.assert_array_equal(state["transposed"], data.reshape(3, 4).T)
    np.testing.assert_array_equal(state["broadcast"], np.broadcast_to(data[:4], (3, 4)))
    np.testing.assert_array_equal(state["offset"], [[5, 6], [7, 8]])
    assert state["scalar"].shape == () and state["scalar"] == 3
    assert state["empty"].shape == (0, 5)


@pytest.mark.parametrize("spec, problem", [
    (dict(offset=-1, size=(4,), stride=(1,)), r"tensor 'w': storage offset -1 is not a non-negative integer"),
    (dict(size=(2, 2), stride=(-2**40, 1)), r"tensor 'w': stride \(-1099511627776, 1\) is not a tuple of non-neg"),
    (dict(size=(-4,), stride=(1,)), r"tensor 'w': size \(-4,\) is not a tuple of non-negative integers"),
    (dict(size=(2.0, 2), stride=(2, 1)), r"tensor 'w': size \(2.0, 2\) is not a tuple of non-negative integers"),
    (dict(offset=True, size=(4,), stride=(1,)), r"tensor 'w': storage offset True is not a non-negative integer"),
    (dict(size=(2, 2), stride=(2,)), r"tensor 'w': size \(2, 2\) and stride \(2,\) have different lengths"),
    (dict(size=(4, 4), stride=(4, 1)), r"tensor 'w': .* needs 16 elements, past the end of storage 'archive/"
                                       r"data/0' of 12"),
    (dict(offset=10, size=(3,), stride=(1,)), r"tensor 'w': .* needs 13 elements, past the end"),
    (dict(size=(2, 3), stride=(2**62, 1)), r"tensor 'w': .* past the end"),
    # A size nested 100000 tuples deep (EMPTY_TUPLE, then TUPLE1 again and again): named in a short message.
    (dict(size=b")" + b"\x85" * 100_000, stride=(1,)), r"tensor 'w': size \(+\.\.\.\)(,\))+ is not a tuple"),
    (dict(numel=-1, size=(1,), stride=(1,)), r"cannot read state dict: storage '0' declares -1 elements, not a count"),
    (dict(numel=2.5, size=(1,), stride=(1,)), r"storage .0. declares 2.5 elements, not a count"),
])
def test_views_outside_their_storage_are_refused(tmp_path, write_pth, spec, problem):
    path = tmp_path / "view.pth"
    write_pth(path, {"w": dict(data=np.arange(12), **spec)})
    message = _load_one_error(path)
    assert re.search(problem, message) and len(message) < 300, message


def test_size_bombs_are_refused_before_any_allocation(tmp_path, write_pth):
    one = np.ones(1)
    cases = {
        # 494 bytes of file, 16 GiB of broadcast tensor.
        "broadcast": ({"w": dict(data=one, size=(2**16, 2**16), stride=(0, 0))}, r"tensor 'w': size \(65536, 65536\) "
                      r"holds 4294967296 elements .* over the limit of 256 MiB per tensor"),
        "huge storage": ({"w": dict(data=one, numel=2**40, size=(1,), stride=(1,))}, r"tensor 'w': storage "
                         r"'archive/data/0' declares 1099511627776 elements .* over the limit of 256 MiB per storage"),
        "huge tensor": ({"w": dict(data=one, numel=2**40, size=(2**20, 2**20), stride=(2**20, 1))},
                        r"tensor 'w': storage 'archive/data/0' declares 1099511627776 elements"),
        "many storages": ({f"w{i}": dict(data=one, numel=2**26, size=(2**26,), stride=(1,)) for i in range(5)},
                          r"its tensors need 1342177280 bytes, over the limit of 1024 MiB per checkpoint"),
        "many broadcasts": ({f"w{i}": dict(data=one, size=(2**26,), stride=(0,)) for i in range(5)},
                            r"its tensors need 1342177300 bytes, over the limit of 1024 MiB per checkpoint"),
    }
    for name, (tensors, problem) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.pth"
        write_pth(path, tensors)
        assert re.search(problem, _load_one_error(path)), name
        assert _peak_bytes(lambda p=path: pytest.raises(UserError, load_state_dict, p)) < 4 * MiB, name


def test_deflate_bomb_is_not_inflated(tmp_path, write_pth):
    path = tmp_path / "bomb.pth"
    bomb = bytes(64 * MiB)  # deflates to 64 KB
    write_pth(path, {"w": dict(data=np.ones(16), size=(16,), stride=(1,), member=bomb)}, zipfile.ZIP_DEFLATED)
    del bomb
    assert path.stat().st_size < MiB
    assert "'archive/data/0' declares 67108864 bytes, expected 64" in _load_one_error(path)
    assert _peak_bytes(lambda: pytest.raises(UserError, load_state_dict, path)) < 4 * MiB


@pytest.mark.parametrize("member, problem", [
    (bytes(60), "'archive/data/0' declares 60 bytes, expected 64"),
    (bytes(68), "'archive/data/0' declares 68 bytes, expected 64"),
    (None, "'archive/data/0' is missing from the archive"),
])
def test_storage_members_must_hold_exactly_their_storage(tmp_path, write_pth, member, problem):
    path = tmp_path / "member.pth"
    spec = dict(data=np.ones(16), size=(16,), stride=(1,))
    spec.update(missing=True) if member is None else spec.update(member=member)
    write_pth(path, {"w": spec})
    assert problem in _load_one_error(path)


def test_non_tensor_entries_are_refused(tmp_path):
    path = tmp_path / "list.pth"
    _zip_with_pickle(path, pickle.dumps({"w": [1, 2]}, protocol=2))
    assert "tensor 'w': not a tensor but a list" in _load_one_error(path)
