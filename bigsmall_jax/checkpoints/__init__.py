"""Model checkpoints: the orbax model directory (`model_dir`), the torch-free .pth reader (`pth`), the
PyTorch import (`torch_import`) and `load_checkpoint` (`load`), which takes any of them.

``load_checkpoint``, ``save_checkpoint`` and ``read_config`` are importable from here; they load lazily,
so that importing `bigsmall_jax.checkpoints.pth` alone does not start JAX or orbax.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_checkpoint": "bigsmall_jax.checkpoints.load",
    "save_checkpoint": "bigsmall_jax.checkpoints.model_dir",
    "read_config": "bigsmall_jax.checkpoints.model_dir",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bigsmall_jax.checkpoints' has no attribute {name!r}")


__all__ = ["load_checkpoint", "read_config", "save_checkpoint"]
