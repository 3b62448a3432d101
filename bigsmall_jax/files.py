"""Writing files so that a reader never sees a partial one: the project's one home for file output.

Every writer here writes to a temporary name in the target's own directory and renames it over the
target only once complete (``os.replace``: atomic on POSIX). A failure, or an interrupt, leaves the
target as it was and no temporary file behind. New files get the ordinary permissions (0o666 minus
the umask), not the 0o600 of `tempfile.mkstemp`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bigsmall_jax.errors import file_error

# Errors of the file system, not of the program: a full disk, a quota, a read-only or forbidden location.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                           errno.EIO})
# ... and, when creating a file or folder, a path that cannot be one (under a file, under /proc).
_CREATE_ERRNOS = _WRITE_ERRNOS | {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST}
# The temporary names `_temporary_sibling` makes (``.NAME.PID.RANDOM`` + the writer's suffix).
TEMPORARY_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}(\.[A-Za-z0-9]+)*$")
PROBE_NAME = "write-probe"  # `probe_writable`'s file is a temporary of this name, there for an instant


def _temporary_sibling(path: Path, suffix: str = ".tmp") -> Path:
    """A name beside `path` that no other writer (process or thread) uses: ``.NAME.PID.RANDOM.tmp``."""
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}"


@contextlib.contextmanager
def _write_errors(path: Path, errnos: frozenset[int] = _WRITE_ERRNOS) -> Iterator[None]:
    """Turns the file system's refusals (`errnos`: full, read-only, forbidden) into a `UserError` naming
    `path`."""
    try:
        yield
    except OSError as e:
        if e.errno not in errnos:
            raise
        raise file_error(path, f"cannot write it ({e.strerror or e})") from None


def probe_writable(folder: str | os.PathLike, what: str = "the folder") -> Path:
    """Checks that files can be created in the existing directory `folder` by creating and removing one.

    Unlike ``os.access`` this also holds for root, for whom ``access`` says yes where the file system says
    no (``/proc``, a read-only mount).

    Raises:
      UserError: `folder` is not a directory, or a file cannot be created in it (named with the reason).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise file_error(folder, f"{what} to write into does not exist")
    probe = _temporary_sibling(folder / PROBE_NAME)
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise file_error(folder, f"cannot write into {what} ({e.strerror or e})") from None
    probe.unlink(missing_ok=True)
    return folder


def remove_temporaries(folder: str | os.PathLike, is_target: Callable[[str], bool]) -> list[str]:
    """Removes the temporary files and folders that the writers here left in `folder` (a killed process leaves
    them) for the targets whose names `is_target` accepts; returns the names removed.

    Only call it while no other process may be writing those targets (e.g. under a lock).
    """
    folder = Path(folder)
    removed = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = TEMPORARY_NAME.match(entry.name)
        if match is None or not is_target(match["name"]):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a temporary path beside `path` to write to; renamed onto `path` when the block ends cleanly.

    The temporary file is created empty with ordinary permissions before it is yielded, so writers that
    open it by name (ffmpeg, matplotlib) keep them. `suffix` lets writers that pick a format from the
    extension (``.mp4``) see the right one.

    Raises:
      UserError: the target's directory does not exist, or the file system refuses the write (full,
        read-only, forbidden).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise file_error(path, "the directory to write into does not exist")
    tmp = _temporary_sibling(path, suffix)
    with _write_errors(path, _CREATE_ERRNOS):
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0o666 honours the umask
    try:
        with _write_errors(path):
            yield tmp
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` (UTF-8, newlines as given) to `path` atomically; returns the path."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)


def json_default(x: Any) -> Any:
    """``json.dumps``' ``default`` for the NumPy scalars and arrays that configs, metadata and results hold."""
    if isinstance(x, np.generic | np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def to_json(obj: Any, sort_keys: bool = True, allow_nan: bool = True, indent: int | None = 2) -> str:
    """JSON text (NumPy values allowed), ending in a newline.

    Args:
      obj: what to encode.
      sort_keys: sort every object's keys.
      allow_nan: False: strict JSON (NaN or inf is a ValueError).
      indent: spaces per level; None: one line (long per-frame arrays).
    """
    return json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan, default=json_default) + "\n"


def write_json_atomic(path: str | os.PathLike, obj: Any, sort_keys: bool = True, allow_nan: bool = True) -> Path:
    """Writes `obj` as indented JSON (`to_json`) to `path` atomically; returns the path."""
    return write_text_atomic(path, to_json(obj, sort_keys=sort_keys, allow_nan=allow_nan))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yields an empty temporary directory beside `path`; it becomes `path` when the block ends cleanly.

    With `overwrite`, an existing `path` is replaced (removed only once the new one is complete);
    without, an existing `path` is an error. On failure the temporary directory is removed.

    Raises:
      UserError: `path` exists and `overwrite` is False, or the file system refuses the write.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise file_error(path, "already exists (pass overwrite to replace it)")
    tmp = _temporary_sibling(path, "")
    with _write_errors(path, _CREATE_ERRNOS):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    try:
        with _write_errors(path):
            yield tmp
        if path.exists():
            old = _temporary_sibling(path, ".old")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def staged_outputs(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary folder inside `out_dir` for a command's several output files.

    When the block ends cleanly every file written there is renamed into `out_dir` (same file system:
    each rename atomic), JSON files last, so a reader that finds the JSON finds its plots too. On
    failure nothing reaches `out_dir`.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise file_error(out_dir, "the folder to write into does not exist")
    tmp = _temporary_sibling(out_dir / "outputs", "")
    with _write_errors(out_dir, _CREATE_ERRNOS):
        tmp.mkdir()
    try:
        with _write_errors(out_dir):
            yield tmp
            for f in sorted(tmp.iterdir(), key=lambda p: p.suffix == ".json"):
                os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
