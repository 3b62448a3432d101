"""The named variants of the model family: the one list of them, used by training configs, FLOPs, the
benchmark, the checkpoint import and the ablation runner."""

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
    "bigsmall_base": {"big_downsample": False, "shift": "none"},
    "bigsmall_concat": {"fusion": "concat"},
    "bigsmall_big2small": {"lateral": "big2small"},
    "bigsmall_small2big": {"lateral": "small2big"},
    "bigsmall_bidir": {"lateral": "both"},
    "bigsmall_gray": {"big_gray": True},
    "big_au": {"variant": "big", "bvp": False, "resp": False, "shift": "none", "big_downsample": False},
    "small_bvp": {"variant": "small", "n_au": 0, "resp": False, "shift": "none"},
    "small_resp": {"variant": "small", "n_au": 0, "bvp": False, "shift": "none"},
    "pathways": {"variant": "pathways", "shift": "none", "big_downsample": False},
}
# The paper's single-task baselines, which together do what one BigSmall does.
SINGLE_TASK_VARIANTS: tuple[str, ...] = ("big_au", "small_bvp", "small_resp")

# The authors' class names (BigSmall_models.py) for the named variants. `SmallPathwayBaseModel` is one class
# for both Small baselines; its name means the pulse one unless a task says respiration.
AUTHOR_CLASSES: dict[str, str] = {
    "BigSmallSlowFastWTSM": "bigsmall",
    "BigSmallSlowFastTSM": "bigsmall_tsm",
    "BigSmallSlowFast": "bigsmall_no_shift",
    "BigSmallWTSM": "bigsmall_no_downsample",
    "BigSmallBaseModel": "bigsmall_base",
    "BigPathwayBaseModel": "big_au",
    "SmallPathwayBaseModel": "small_bvp",
    "BSSFWTSM_ConcatFusion": "bigsmall_concat",
    "BSSFWTSM_BiDirLatConn": "bigsmall_bidir",
    "BSSFWTSM_Big2SmallLatConn": "bigsmall_big2small",
    "BSSFWTSM_Small2BigLatConn": "bigsmall_small2big",
    "BigSmallSlowFastWTSM_GrayScaleBig": "bigsmall_gray",
}


def variant_name(name: str) -> str:
    """The `NAMED_VARIANTS` name of `name`, which is one, or one of the authors' class names (`AUTHOR_CLASSES`).

    Raises:
      UserError: an unknown name, listing the valid ones.
    """
    if name in NAMED_VARIANTS:
        return name
    if name in AUTHOR_CLASSES:
        return AUTHOR_CLASSES[name]
    raise UserError(f"unknown model variant {name!r}; valid: {', '.join(NAMED_VARIANTS)} "
                    f"(or the authors' class names {', '.join(AUTHOR_CLASSES)})")


def named_config(name: str, **overrides) -> ModelConfig:
    """The `ModelConfig` of a named variant (a `NAMED_VARIANTS` name or an authors' class name), with field
    overrides."""
    return ModelConfig(**{**NAMED_VARIANTS[variant_name(name)], **overrides})


def variants_of(config: ModelConfig) -> list[str]:
    """The named variants whose fields `config` has (apart from n_segment, dtype and the head sizes)."""
    ignore = {"n_segment", "dtype", "n_au"}
    mine = {k: v for k, v in config.to_dict().items() if k not in ignore}
    out = []
    for name in NAMED_VARIANTS:
        theirs = {k: v for k, v in named_config(name).to_dict().items() if k not in ignore}
        if theirs == mine:
            out.append(name)
    return out
