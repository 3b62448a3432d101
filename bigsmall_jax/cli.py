"""What the command-line entry points share: literal parsing of ``key=value`` items and output-file checks."""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bigsmall_jax.errors import UserError, file_error
from bigsmall_jax.files import probe_writable


def parse_literal(text: str) -> Any:
    """A Python literal (``3``, ``1e-3``, ``(4, 8)``, ``True``, ``'x'``), else the text itself (``every``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def split_key_value(item: str, what: str = "override") -> tuple[str, Any]:
    """``"a.b=3"`` -> ``("a.b", 3)`` (the value by `parse_literal`); `UserError` when there is no ``=``."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"{what} {item!r} is not of the form key=value")
    return key.strip(), parse_literal(text)


def parse_key_values(items: Sequence[str], what: str = "override") -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (`split_key_value`; a later key wins)."""
    return dict(split_key_value(item, what) for item in items)


def check_output_file(path: str | os.PathLike, suffix: str, flag: str) -> Path:
    """Checks that `path` can be a new or replaced `suffix` file (``.json``, ``.png``); returns it as a Path.

    Raises:
      UserError: a wrong extension, a directory, a folder that does not exist or cannot be written into.
    """
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise file_error(path, f"{flag} must be a {suffix} file")
    if path.is_dir():
        raise file_error(path, f"{flag} is a directory")
    if not path.parent.is_dir():
        raise file_error(path, f"the folder to write {flag} into does not exist")
    try:
        probe_writable(path.parent, f"the folder of {flag}")
    except UserError as e:
        raise file_error(path, str(e)) from None
    return path


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """Checks, before any work, that `path` can be a directory of outputs: an existing writable directory, or
    a new one whose nearest existing ancestor is a writable directory. Returns `path` as a Path.

    Raises:
      UserError: `path` or an ancestor is a file, or the place cannot be written (read-only, ``/proc``, ...).
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise file_error(path, f"{flag} exists and is not a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise file_error(path, f"{flag} cannot be created: {existing} is a file, not a folder")
    try:
        probe_writable(existing, "the folder")
    except UserError as e:
        raise file_error(path, f"{flag} cannot be written: {e}") from None
    return path


def _is_within(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies somewhere under it (both already resolved)."""
    return path == folder or folder in path.parents


def check_not_inside(path: str | os.PathLike, inputs: Sequence[str | os.PathLike | None], flag: str) -> None:
    """Checks that writing `path` cannot replace an input: it is none of `inputs` and lies in none of them.

    Symbolic links are resolved first, so a link into a checkpoint directory counts as inside it. Inputs
    that are None (an optional flag not given) are skipped.

    Raises:
      UserError: `path` is an input file or directory, or lies inside an input directory.
    """
    target = Path(path).resolve()
    for source in inputs:
        if source is None:
            continue
        source = Path(source).resolve()
        if target == source:
            raise file_error(path, f"{flag} is an input of this command ({source}); it would be overwritten")
        if _is_within(target, source):
            raise file_error(path, f"{flag} lies inside the input {source}; write it somewhere else")
