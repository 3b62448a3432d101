"""The named variants of the model family: the one list of them, used by training configs, FLOPs and the
benchmark."""

from __future__ import annotations

from typing import Any

from bigsmall_jax.errors import UserError
from bigsmall_jax.model.config import ModelConfig

# Named variants of the family: the paper's model, its ablations and its single-task baselines.
NAMED_VARIANTS: dict[str, dict[str, Any]] = {
    "bigsmall": {},
    "bigsmall_no_downsample": {"big_downsample": False},
    "bigsmall_tsm": {"shift": "zero"},
    "bigsmall_no_shift": {"shift": "none"},
    "bigsmall_concat": {"fusion": "concat"},
    "big_au": {"variant": "big", "bvp": False, "resp": False, "shift": "none", "big_downsample": False},
    "small_bvp": {"variant": "small", "n_au": 0, "resp": False, "shift": "none"},
    "small_resp": {"variant": "small", "n_au": 0, "bvp": False, "shift": "none"},
    "pathways": {"variant": "pathways", "shift": "none", "big_downsample": False},
}
# The paper's single-task baselines, which together do what one BigSmall does.
SINGLE_TASK_VARIANTS: tuple[str, ...] = ("big_au", "small_bvp", "small_resp")


def named_config(name: str, **overrides) -> ModelConfig:
    """The `ModelConfig` of a named variant (see `NAMED_VARIANTS`), with field overrides."""
    if name not in NAMED_VARIANTS:
        raise UserError(f"unknown model variant {name!r}; valid: {sorted(NAMED_VARIANTS)}")
    return ModelConfig(**{**NAMED_VARIANTS[name], **overrides})
