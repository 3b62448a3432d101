"""`ModelConfig`: every field that defines a model of the BigSmall family, checked on construction.

The config is stored as JSON beside every checkpoint (`ModelConfig.to_dict`, `ModelConfig.from_dict`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from bigsmall_jax.errors import UserError

SHIFT_KINDS = ("wrap", "zero", "none")
VARIANTS = ("bigsmall", "big", "small", "pathways")
FUSIONS = ("sum", "concat")
LATERALS = ("none", "big2small", "small2big", "both")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}

_INT_FIELDS = ("n_segment", "dense_units", "fold_div", "n_au", "big_size", "small_size")
_INT_TUPLE_FIELDS = ("big_filters", "big_stages", "big_pools", "small_filters")
_BOOL_FIELDS = ("bvp", "resp", "big_downsample", "big_gray")
_STR_FIELDS = ("variant", "shift", "fusion", "dtype", "lateral")


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _type_problems(config: ModelConfig) -> list[str]:
    """What is of the wrong type in `config` (a JSON file may hold anything); converts the good values in place
    to plain ``int`` / ``float`` / ``bool`` and tuples."""
    problems = []

    def setf(name, value):
        object.__setattr__(config, name, value)

    for name in _INT_FIELDS:
        v = getattr(config, name)
        if _is_int(v):
            setf(name, int(v))
        else:
            problems.append(f"{name} must be an integer, got {v!r}")
    for name in (*_INT_TUPLE_FIELDS, "dropout"):
        v = getattr(config, name)
        check = _is_int if name != "dropout" else _is_real
        if isinstance(v, list | tuple) and all(check(x) for x in v):
            setf(name, tuple(int(x) if name != "dropout" else float(x) for x in v))
        else:
            kind = "integers" if name != "dropout" else "finite numbers"
            problems.append(f"{name} must be a list of {kind}, got {v!r}")
    for name in _BOOL_FIELDS:
        v = getattr(config, name)
        if isinstance(v, bool | np.bool_):
            setf(name, bool(v))
        else:
            problems.append(f"{name} must be true or false, got {v!r}")
    for name in _STR_FIELDS:
        if not isinstance(getattr(config, name), str):
            problems.append(f"{name} must be a string, got {getattr(config, name)!r}")
    return problems


def _value_problems(c: ModelConfig) -> list[str]:
    """What is out of range or inconsistent in `c` (whose field types `_type_problems` found right)."""
    problems = []
    for name, allowed in (("variant", VARIANTS), ("shift", SHIFT_KINDS), ("fusion", FUSIONS), ("dtype", tuple(DTYPES)),
                          ("lateral", LATERALS)):
        if getattr(c, name) not in allowed:
            problems.append(f"{name} {getattr(c, name)!r} is not one of {allowed}")
    for name in ("n_segment", "dense_units", "big_size", "small_size"):
        if getattr(c, name) < 1:
            problems.append(f"{name} must be >= 1, got {getattr(c, name)}")
    if c.fold_div < 2:
        problems.append(f"fold_div must be >= 2 (a 1/fold_div share of the channels shifts each way), got {c.fold_div}")
    for name in _INT_TUPLE_FIELDS:
        if not getattr(c, name) or min(getattr(c, name)) < 1:
            problems.append(f"{name} must be a non-empty list of integers >= 1, got {list(getattr(c, name))}")
    if any(not 0.0 <= d < 1.0 for d in c.dropout):
        problems.append(f"dropout rates must lie in [0, 1), got {list(c.dropout)}")
    if problems:  # the checks below need the ranges above
        return problems
    if sum(c.big_stages) != len(c.big_filters):
        problems.append(f"big_stages {c.big_stages} must add up to len(big_filters)={len(c.big_filters)}")
    if not len(c.big_stages) == len(c.big_pools) == len(c.dropout):
        problems.append("big_stages, big_pools and dropout need one entry per Big stage")
    if c.n_au < 0 or not (c.n_au or c.bvp or c.resp):
        problems.append("the model needs at least one head (n_au > 0, bvp or resp)")
    if c.variant == "bigsmall" and c.big_filters[-1] != c.small_filters[-1] and c.fusion == "sum":
        problems.append("sum fusion needs the last Big and Small filters to match")
    pooled = c.big_size
    for p in c.big_pools:
        pooled //= p
    if c.variant == "bigsmall" and pooled != c.small_size:
        problems.append(f"Big output {pooled}x{pooled} does not match the Small size {c.small_size}")
    if c.variant == "pathways" and (c.shift != "none" or c.big_downsample):
        problems.append("the pathways variant runs the published single-task pathways: shift='none', "
                        "big_downsample=False")
    if c.big_gray and c.variant == "small":
        problems.append("big_gray needs a Big branch (variant 'bigsmall' or 'big')")
    if c.lateral != "none":
        if c.variant != "bigsmall" or not c.big_downsample:
            problems.append("lateral connections need variant 'bigsmall' with big_downsample=True")
        if (c.big_size // c.big_pools[0]) % c.small_size:
            problems.append(f"lateral connections need the Big block-1 size {c.big_size // c.big_pools[0]} "
                            f"to be a multiple of the Small size {c.small_size}")
        if len(c.small_filters) < 2:
            problems.append("lateral connections need at least 2 Small convs (block 1 and block 2)")
    return problems


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a model of the family. Stored as JSON beside every checkpoint.

    Attributes:
      variant: ``"bigsmall"``, ``"big"`` (Big pathway alone), ``"small"`` (Small pathway alone) or
        ``"pathways"`` (the single-task baselines side by side: the Big pathway for the AUs and one Small
        pathway per wave head, sharing nothing but the inputs).
      n_segment: frames per clip T (any T >= 1); the temporal shift and Big downsampling work per clip.
      big_filters: output channels of the Big convs, one per conv.
      big_stages: convs per Big stage; each stage ends with an average pool and dropout.
      big_pools: average-pool window (= stride) per Big stage. 144 / (2*2*4) = 9.
      small_filters: output channels of the Small convs (each preceded by the temporal shift).
      dense_units: width of each head's hidden dense layer.
      dropout: dropout rate after each Big stage (training only).
      shift: temporal shift before each Small conv: ``"wrap"`` (WTSM), ``"zero"`` (TSM) or ``"none"``.
      fold_div: a ``1/fold_div`` share of channels shifts each way.
      n_au: number of AU logits (0: no AU head).
      bvp: whether the pulse head exists.
      resp: whether the respiration head exists.
      fusion: ``"sum"`` (the paper) or ``"concat"`` (the paper's ablation).
      big_downsample: Big branch on the first frame of each segment only (the paper) or on every frame.
      lateral: the paper's low-level fusion ablation, lateral connections after the first block of each
        pathway (Big: its first stage; Small: its first half of convs): ``"none"`` (the paper's model),
        ``"big2small"`` (the Big block-1 output average-pooled to the Small size, repeated over the clip,
        concatenated before the Small block-2 channels), ``"small2big"`` (the Small block-1 output averaged
        over the clip, nearest-neighbour upsampled to the Big block-1 size, concatenated before the Big
        block-2 channels) or ``"both"``. Needs ``variant="bigsmall"`` with ``big_downsample``.
      big_gray: the Big input is the mean of its three colour channels (the paper's grayscale-Big
        ablation); the first Big conv then has one input channel.
      dtype: compute dtype; parameters stay float32.
      big_size, small_size: input resolutions (pixels).
    """

    variant: str = "bigsmall"
    n_segment: int = 3
    big_filters: tuple[int, ...] = (32, 32, 32, 64, 64, 64)
    big_stages: tuple[int, ...] = (2, 2, 2)
    big_pools: tuple[int, ...] = (2, 2, 4)
    small_filters: tuple[int, ...] = (32, 32, 32, 64)
    dense_units: int = 128
    dropout: tuple[float, ...] = (0.25, 0.5, 0.5)
    shift: str = "wrap"
    fold_div: int = 3
    n_au: int = 12
    bvp: bool = True
    resp: bool = True
    fusion: str = "sum"
    big_downsample: bool = True
    lateral: str = "none"
    big_gray: bool = False
    dtype: str = "float32"
    big_size: int = 144
    small_size: int = 9

    def __post_init__(self):
        problems = _type_problems(self) or _value_problems(self)  # values are checked once their types are right
        if problems:
            raise UserError("invalid model config: " + "; ".join(problems))

    @property
    def heads(self) -> tuple[tuple[str, int], ...]:
        """(name, output size) of each head, in output order."""
        out = []
        if self.n_au:
            out.append(("au", self.n_au))
        if self.bvp:
            out.append(("bvp", 1))
        if self.resp:
            out.append(("resp", 1))
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values (tuples as lists), what `from_dict` reads back."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "model config") -> ModelConfig:
        """Builds a config, refusing unknown keys with a `UserError` that lists the valid ones."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise UserError(f"{source}: unknown model config key(s) {unknown}; valid keys: {sorted(valid)}")
        try:
            return cls(**dict(d))
        except UserError as e:
            raise UserError(f"{source}: {e}") from None
