"""Read PyTorch ``.pth`` state dicts without PyTorch, and without executing untrusted code.

A ``.pth`` written by ``torch.save`` (zip format, torch >= 1.6) is a zip archive holding ``<root>/data.pkl``
(a pickle of the state dict) and ``<root>/data/<key>`` (the raw little-endian bytes of each storage). The
pickle names a few globals (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``, storage
classes such as ``torch.FloatStorage``) and refers to storages by persistent id
``("storage", storage_class, key, location, numel)``.

`load_state_dict` unpickles with an allow-list of exactly those globals, each replaced by a harmless
NumPy implementation, so a hostile pickle (one that names ``os.system`` or any other global) is refused
with a `UserError` before anything runs. Storage locations (``cuda:0`` in the published checkpoints) are
ignored: every tensor lands on the host as a NumPy array.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np

from bigsmall_jax.errors import UserError, file_error

# torch storage class name -> NumPy dtype of its elements.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": None,  # handled specially: no NumPy bfloat16 without ml_dtypes
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """Stands in for ``torch.<Name>Storage``: only carries the element dtype."""

    def __init__(self, name: str):
        if name == "BFloat16Storage":
            self.dtype = np.dtype(ml_dtypes.bfloat16)
        else:
            self.dtype = np.dtype(_STORAGE_DTYPES[name])
        self.name = name


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """NumPy version of ``torch._utils._rebuild_tensor_v2``: a strided view copied to a C-contiguous array."""
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    if not size:
        return np.array(storage[storage_offset], dtype=storage.dtype)
    itemsize = storage.dtype.itemsize
    needed = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1
    if any(n == 0 for n in size):
        return np.zeros(size, dtype=storage.dtype)
    if needed > storage.size:
        raise pickle.UnpicklingError(
            f"tensor of size {size} with stride {stride} at offset {storage_offset} overruns its storage "
            f"of {storage.size} elements"
        )
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a state dict needs; storages are read from the zip."""

    def __init__(self, file, archive: zipfile.ZipFile, root: str):
        super().__init__(file)
        self._archive = archive
        self._root = root
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"refusing to load global '{module}.{name}': a state dict needs only tensors, "
            "so this file is not a plain PyTorch state dict (possibly malicious)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"storage of unknown type {storage_type!r}")
        key = str(key)
        if key not in self._storages:
            name = f"{self._root}/data/{key}"
            try:
                raw = self._archive.read(name)
            except KeyError:
                raise pickle.UnpicklingError(f"storage '{name}' is missing from the archive") from None
            dtype = storage_type.dtype.newbyteorder("<")
            if len(raw) < int(numel) * dtype.itemsize:
                raise pickle.UnpicklingError(f"storage '{name}' holds {len(raw)} bytes, expected "
                                             f"{int(numel) * dtype.itemsize}")
            self._storages[key] = np.frombuffer(raw, dtype=dtype, count=int(numel)).astype(
                storage_type.dtype.newbyteorder("="))
        return self._storages[key]


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Reads a PyTorch zip-format state dict into ``{key: np.ndarray}`` without PyTorch.

    Args:
      path: a ``.pth`` file written by ``torch.save(model.state_dict(), path)``.
    Returns:
      The tensors by key, in file order, as host NumPy arrays (PyTorch layouts kept: OIHW kernels,
      ``(out, in)`` linear weights). Keys keep any ``module.`` prefix.
    Raises:
      UserError: the file is missing, not a zip, truncated, or its pickle names anything beyond a
        state dict's needs.
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(path, "no such checkpoint file")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise file_error(path, "not a PyTorch zip checkpoint (corrupt, truncated, or a legacy "
                               "non-zip torch.save file)") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise file_error(path, f"expected one data.pkl in the archive, found {len(pickles)}")
        root = pickles[0][: -len("/data.pkl")] if "/" in pickles[0] else ""
        byteorder = f"{root}/byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise file_error(path, "big-endian checkpoints are not supported")
        try:
            unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), archive, root)
            state = unpickler.load()
        except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError,
                AttributeError, IndexError, KeyError, OSError) as e:
            raise file_error(path, f"cannot read state dict: {e}") from None
    if not isinstance(state, dict):
        raise file_error(path, f"expected a state dict, found a pickled {type(state).__name__}")
    out = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise file_error(path, f"entry {key!r} is not a tensor")
        out[key] = value
    if not out:
        raise UserError(f"{path}: the state dict is empty")
    return out
