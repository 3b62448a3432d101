"""Read PyTorch ``.pth`` state dicts without PyTorch, and without executing untrusted code.

A ``.pth`` written by ``torch.save`` (zip format, torch >= 1.6) is a zip archive holding ``<root>/data.pkl``
(a pickle of the state dict) and ``<root>/data/<key>`` (the raw little-endian bytes of each storage). The
pickle names a few globals (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``, storage
classes such as ``torch.FloatStorage``) and refers to storages by persistent id
``("storage", storage_class, key, location, numel)``.

`load_state_dict` reads a file in two phases, so that a hostile file cannot run code, read memory outside a
storage, or make the reader allocate much:

1. The pickle (at most `MAX_PICKLE_BYTES`) is unpickled with an allow-list of exactly the globals above,
   each replaced by a harmless stand-in that only records what the pickle declares: a hostile pickle (one
   that names ``os.system`` or any other global) is refused before anything runs. Every tensor's offset,
   shape and strides must then be non-negative Python integers, its view must fit inside its storage
   (computed with Python integers, so nothing overflows), and the declared sizes must stay within
   `MAX_STORAGE_BYTES` per storage, `MAX_TENSOR_BYTES` per tensor and `MAX_FILE_BYTES` per file.
2. Only then are the storages read: each zip member must declare exactly the size its storage needs and
   is read with that bound (a deflate bomb is never inflated past it). Contiguous tensors are slices of
   their storage; other strided layouts (transposes, stride-0 broadcasts) are gathered with bounded index
   arithmetic, never with ``as_strided``.

Storage locations (``cuda:0`` in the published checkpoints) are ignored: every tensor lands on the host as
a NumPy array. Every refusal is a `UserError` naming the file and the tensor or member at fault.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import pickle
import reprlib
import zipfile
from collections.abc import Callable
from pathlib import Path

import ml_dtypes
import numpy as np

from bigsmall_jax.errors import UserError, file_error

MiB = 1 << 20
# Size limits, checked against what the file declares before anything is read or inflated. BigSmall's
# largest tensor is 2.6 MB and a whole multitask checkpoint about 10 MB, so these leave ample room.
MAX_PICKLE_BYTES = 16 * MiB  # the data.pkl member
MAX_STORAGE_BYTES = 256 * MiB  # one storage (one data/<key> member)
MAX_TENSOR_BYTES = 256 * MiB  # one tensor, as built
MAX_FILE_BYTES = 1024 * MiB  # all storages read plus all tensors copied out of them, per file
_GATHER_CHUNK = 1 << 20  # elements gathered per step for a non-contiguous tensor
_short = reprlib.Repr().repr  # repr of a value from the pickle in messages: bounded in length and depth

# torch storage class name -> NumPy dtype of its elements.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
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
        self.dtype = np.dtype(_STORAGE_DTYPES[name])
        self.name = name


@dataclasses.dataclass(frozen=True)
class _StorageRef:
    """A storage as the pickle declares it: zip member name, element dtype and element count (a count, not
    yet compared with the limits)."""

    member: str
    dtype: np.dtype
    numel: int


@dataclasses.dataclass(frozen=True)
class _TensorRef:
    """A tensor as the pickle declares it: arguments of ``_rebuild_tensor_v2``, unchecked."""

    storage: object
    offset: object
    shape: object
    strides: object


@dataclasses.dataclass(frozen=True)
class _Layout:
    """A checked tensor view: every field a non-negative Python int, the view inside its storage."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def contiguous(self) -> bool:
        """Whether the view is a C-ordered run of `numel` elements from `offset` (size-1 axes ignored)."""
        expected = 1
        for n, s in zip(reversed(self.shape), reversed(self.strides), strict=True):
            if n != 1 and s != expected:
                return False
            expected *= n
        return True


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """Stands in for ``torch._utils._rebuild_tensor_v2``: records its arguments, checked later."""
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a state dict needs; storages become `_StorageRef`s."""

    def __init__(self, file, root: str):
        super().__init__(file)
        self._root = root
        self._storages: dict[str, _StorageRef] = {}

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
            raise pickle.UnpicklingError(f"unexpected persistent id {_short(pid)}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"storage of unknown type {_short(storage_type)}")
        if not isinstance(key, str):
            raise pickle.UnpicklingError(f"storage key {_short(key)} is not a string")
        if not _is_count(numel):
            raise pickle.UnpicklingError(f"storage '{key}' declares {_short(numel)} elements, not a count")
        ref = _StorageRef(f"{self._root}/data/{key}", storage_type.dtype, numel)
        known = self._storages.setdefault(key, ref)
        if known != ref:
            raise pickle.UnpicklingError(f"storage '{ref.member}' is declared twice with different types or sizes")
        return known


def _is_count(value) -> bool:
    """Whether `value` is a non-negative Python int (bool, float and NumPy scalars are not)."""
    return type(value) is int and value >= 0


def _count_tuple(value, what: str) -> tuple[int, ...]:
    """`value` as a tuple of non-negative ints, or a ValueError saying what is wrong with it."""
    if not isinstance(value, (tuple, list)) or not all(_is_count(v) for v in value):
        raise ValueError(f"{what} {_short(value)} is not a tuple of non-negative integers")
    return tuple(value)


def _check_storage(storage: _StorageRef) -> int:
    """The byte size of `storage` (its element count checked by the unpickler), or a ValueError if over the
    limit."""
    nbytes = storage.numel * storage.dtype.itemsize
    if nbytes > MAX_STORAGE_BYTES:
        raise ValueError(f"storage '{storage.member}' declares {storage.numel} elements ({nbytes} bytes), over "
                         f"the limit of {MAX_STORAGE_BYTES // MiB} MiB per storage")
    return nbytes


def _check_tensor(ref) -> _Layout:
    """The checked layout of a tensor the pickle declares, or a ValueError saying what is wrong."""
    if not isinstance(ref, _TensorRef):
        raise ValueError(f"not a tensor but a {type(ref).__name__}")
    if not isinstance(ref.storage, _StorageRef):
        raise ValueError(f"its storage is a {type(ref.storage).__name__}, not a stored tensor")
    _check_storage(ref.storage)
    if not _is_count(ref.offset):
        raise ValueError(f"storage offset {_short(ref.offset)} is not a non-negative integer")
    shape = _count_tuple(ref.shape, "size")
    strides = _count_tuple(ref.strides, "stride")
    if len(shape) != len(strides):
        raise ValueError(f"size {shape} and stride {strides} have different lengths")
    numel = math.prod(shape)
    nbytes = numel * ref.storage.dtype.itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise ValueError(f"size {shape} holds {numel} elements ({nbytes} bytes), over the limit of "
                         f"{MAX_TENSOR_BYTES // MiB} MiB per tensor")
    if numel:
        extent = ref.offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True)) + 1
        if extent > ref.storage.numel:
            raise ValueError(f"size {shape} with stride {strides} at offset {ref.offset} needs {extent} elements, "
                             f"past the end of storage '{ref.storage.member}' of {ref.storage.numel}")
    return _Layout(ref.storage, ref.offset, shape, strides)


def _check_state(path: Path, state) -> dict[str, _Layout]:
    """Checks every entry of an unpickled state dict and the file's total size; nothing is read yet."""
    if not isinstance(state, dict):
        raise file_error(path, f"expected a state dict, found a pickled {type(state).__name__}")
    layouts: dict[str, _Layout] = {}
    for key, ref in state.items():
        if not isinstance(key, str):
            raise file_error(path, f"entry {_short(key)} is not a tensor")
        try:
            layouts[key] = _check_tensor(ref)
        except ValueError as e:
            raise file_error(path, f"tensor '{key}': {e}") from None
    if not layouts:
        raise UserError(f"{path}: the state dict is empty")
    storages = {layout.storage for layout in layouts.values()}
    total = sum(s.numel * s.dtype.itemsize for s in storages)
    total += sum(x.numel * x.storage.dtype.itemsize for x in layouts.values() if not x.contiguous)
    if total > MAX_FILE_BYTES:
        raise file_error(path, f"its tensors need {total} bytes, over the limit of {MAX_FILE_BYTES // MiB} MiB "
                               "per checkpoint")
    return layouts


def _read_member(path: Path, archive: zipfile.ZipFile, name: str, nbytes: int) -> bytes:
    """The `nbytes` bytes of zip member `name`, read with that bound; refused unless it holds exactly that."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise file_error(path, f"'{name}' is missing from the archive") from None
    if info.file_size != nbytes:
        raise file_error(path, f"'{name}' declares {info.file_size} bytes, expected {nbytes}")
    with archive.open(info) as member:
        data = member.read(nbytes + 1)
    if len(data) != nbytes:
        raise file_error(path, f"'{name}' holds {len(data)} bytes, expected {nbytes}")
    return data


def _read_storage(path: Path, archive: zipfile.ZipFile, storage: _StorageRef) -> np.ndarray:
    """The elements of a checked storage, in native byte order."""
    raw = _read_member(path, archive, storage.member, storage.numel * storage.dtype.itemsize)
    flat = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"), count=storage.numel)
    return flat.astype(storage.dtype.newbyteorder("="))


def _gather(flat: np.ndarray, layout: _Layout) -> np.ndarray:
    """A non-contiguous view of `flat` copied out element by element, `_GATHER_CHUNK` indices at a time.

    Every index lies in ``[offset, extent)``, inside `flat` (checked by `_check_tensor`), so the int64
    arithmetic neither overflows nor reads outside the storage.
    """
    out = np.empty(layout.numel, dtype=flat.dtype)
    for start in range(0, layout.numel, _GATHER_CHUNK):
        pos = np.arange(start, min(start + _GATHER_CHUNK, layout.numel), dtype=np.int64)
        index = np.full(pos.shape, layout.offset, dtype=np.int64)
        for n, s in zip(reversed(layout.shape), reversed(layout.strides), strict=True):
            index += (pos % n) * s
            pos //= n
        out[start:start + len(index)] = flat[index]
    return out.reshape(layout.shape)


def _build_tensor(flat: np.ndarray, layout: _Layout) -> np.ndarray:
    """The tensor `layout` describes, from its storage's elements `flat`."""
    if layout.numel == 0:
        return np.zeros(layout.shape, dtype=flat.dtype)
    if layout.contiguous:
        return flat[layout.offset:layout.offset + layout.numel].reshape(layout.shape)
    return _gather(flat, layout)


def _unpickle(path: Path, archive: zipfile.ZipFile):
    """The archive's data.pkl unpickled with the allow-list: storages and tensors as unchecked refs."""
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
        raise file_error(path, f"expected one data.pkl in the archive, found {len(pickles)}")
    root = pickles[0][: -len("/data.pkl")] if "/" in pickles[0] else ""
    byteorder = f"{root}/byteorder"
    if byteorder in archive.namelist():
        with archive.open(byteorder) as member:
            if member.read(16).strip() != b"little":
                raise file_error(path, "big-endian checkpoints are not supported")
    size = archive.getinfo(pickles[0]).file_size
    if size > MAX_PICKLE_BYTES:
        raise file_error(path, f"'{pickles[0]}' declares {size} bytes, over the limit of "
                               f"{MAX_PICKLE_BYTES // MiB} MiB")
    data = _read_member(path, archive, pickles[0], size)
    try:
        return _RestrictedUnpickler(io.BytesIO(data), root).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RecursionError) as e:
        raise file_error(path, f"cannot read state dict: {e}") from None


def load_state_dict(path: str | Path,
                    check: Callable[[dict[str, tuple[int, ...]]], None] | None = None) -> dict[str, np.ndarray]:
    """Reads a PyTorch zip-format state dict into ``{key: np.ndarray}`` without PyTorch.

    Args:
      path: a ``.pth`` file written by ``torch.save(model.state_dict(), path)``.
      check: called with every tensor's shape by key once the layouts are checked and before any storage
        is read, e.g. to compare them with a model's; it refuses a file by raising.
    Returns:
      The tensors by key, in file order, as host NumPy arrays (PyTorch layouts kept: OIHW kernels,
      ``(out, in)`` linear weights). Keys keep any ``module.`` prefix. Contiguous tensors are views of
      their storage's array, which tensors sharing a storage share.
    Raises:
      UserError: the file is missing, not a zip, truncated; its pickle names anything beyond a state
        dict's needs; a tensor's offset, size or stride is negative or not an integer, or its view does
        not fit its storage; a declared size is over a limit (see the module docstring); a storage member
        does not hold exactly the bytes its storage needs.
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(path, "no such checkpoint file")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise file_error(path, "not a PyTorch zip checkpoint (corrupt, truncated, or a legacy "
                               "non-zip torch.save file)") from None
    try:
        with archive:
            layouts = _check_state(path, _unpickle(path, archive))
            if check is not None:
                check({key: layout.shape for key, layout in layouts.items()})
            storages = {s: _read_storage(path, archive, s) for s in dict.fromkeys(x.storage for x in layouts.values())}
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as e:
        raise file_error(path, f"cannot read the archive: {e}") from None
    return {key: _build_tensor(storages[layout.storage], layout) for key, layout in layouts.items()}
