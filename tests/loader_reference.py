"""The published loaders' arrays on fabricated raw trees (``shared/reference/loaders``, beside the clone).

The trees and golden arrays (about 30 MB) are read in place rather than copied into tests/data; the tests
that need them skip when ``../shared/reference`` is absent (CI has it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

LOADERS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "loaders"


def loader_dir(name: str) -> Path:
    """``shared/reference/loaders/<name>`` (bp4d_raw, ubfc, pure); skips the test when it is absent."""
    path = LOADERS / name
    if not (path / "golden.npz").is_file():
        pytest.skip(f"{path} not found (the shared reference data sits beside the clone)")
    return path


def golden(name: str) -> dict[str, np.ndarray]:
    with np.load(loader_dir(name) / "golden.npz") as g:
        return {k: g[k] for k in g.files}


def copy_tree(name: str, dst: Path) -> Path:
    """A writable copy of a reference tree (tests that damage files)."""
    return Path(shutil.copytree(loader_dir(name) / "tree", dst))


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if np.size(a) else 0.0
