"""`write_pth`: hand-made PyTorch zip checkpoints, honest or hostile, written without PyTorch.

The pickle is assembled from protocol-2 opcodes (``GLOBAL torch._utils _rebuild_tensor_v2``, a ``BINPERSID``
storage reference naming ``torch.FloatStorage``), so any offset, size, stride or declared element count can
be written, as a hostile file would. Nothing in these files is ever executed.
"""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest


def _value(obj) -> bytes:
    """The protocol-2 opcodes that push `obj` (a str, int, bool or tuple of them), without PROTO and STOP;
    `obj` itself if it is bytes (opcodes written by hand)."""
    return obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=2)[2:-1]


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tensor_opcodes(storage_key: str, numel: int, offset, size, stride) -> bytes:
    """``_rebuild_tensor_v2(<storage key, FloatStorage, numel>, offset, size, stride, False, OrderedDict())``."""
    storage = (b"(" + _value("storage") + _global("torch", "FloatStorage") + _value(storage_key) + _value("cpu")
               + _value(numel) + b"tQ")
    hooks = _global("collections", "OrderedDict") + b")R"
    return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + storage + _value(offset) + _value(size)
            + _value(stride) + b"\x89" + hooks + b"tR")


def make_pth(path, tensors: dict[str, dict], compression: int = zipfile.ZIP_STORED) -> None:
    """Writes a .pth whose state dict maps each key to a float32 tensor described by its dict.

    Each dict holds ``data`` (the storage's float32 values), ``size`` and ``stride`` (values, or bytes: the
    opcodes that push them), and optionally
    ``offset`` (default 0), ``numel`` (the element count the pickle declares, default ``data.size``),
    ``member`` (the bytes stored in the zip instead of ``data``) and ``missing`` (no zip member at all).
    """
    body = b""
    members = {}
    for i, (key, t) in enumerate(tensors.items()):
        data = np.asarray(t.get("data", np.zeros(0)), dtype="<f4")
        numel = t.get("numel", data.size)
        body += _value(key) + _tensor_opcodes(str(i), numel, t.get("offset", 0), t["size"], t["stride"])
        if not t.get("missing"):
            members[f"archive/data/{i}"] = t.get("member", data.tobytes())
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}(" + body + b"u.")
        z.writestr("archive/byteorder", "little")
        for name, member in members.items():
            z.writestr(name, member)
        z.writestr("archive/version", "3\n")


@pytest.fixture
def write_pth():
    """`make_pth`, as a fixture."""
    return make_pth
