"""`ModelConfig`: every field that defines a model of the BigSmall family, checked on construction.

The config is stored as JSON beside every checkpoint (`ModelConfig.to_dict`, `ModelConfig.from_dict`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from bigsmall_jax.errors import UserError

SHIFT_KINDS = ("wrap", "zero", "none")
VARIANTS = ("bigsmall", "big", "small", "pathways")
FUSIONS = ("sum", "concat")
LATERALS = ("none", "big2small", "small2big", "both")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


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
        for name in ("big_filters", "big_stages", "big_pools", "small_filters", "dropout"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = []
        if self.variant not in VARIANTS:
            problems.append(f"variant {self.variant!r} is not one of {VARIANTS}")
        if self.shift not in SHIFT_KINDS:
            problems.append(f"shift {self.shift!r} is not one of {SHIFT_KINDS}")
        if self.fusion not in FUSIONS:
            problems.append(f"fusion {self.fusion!r} is not one of {FUSIONS}")
        if self.dtype not in DTYPES:
            problems.append(f"dtype {self.dtype!r} is not one of {tuple(DTYPES)}")
        if self.lateral not in LATERALS:
            problems.append(f"lateral {self.lateral!r} is not one of {LATERALS}")
        elif self.lateral != "none":
            if self.variant != "bigsmall" or not self.big_downsample:
                problems.append("lateral connections need variant 'bigsmall' with big_downsample=True")
            if (self.big_size // self.big_pools[0]) % self.small_size:
                problems.append(f"lateral connections need the Big block-1 size {self.big_size // self.big_pools[0]} "
                                f"to be a multiple of the Small size {self.small_size}")
            if len(self.small_filters) < 2:
                problems.append("lateral connections need at least 2 Small convs (block 1 and block 2)")
        if self.big_gray and self.variant == "small":
            problems.append("big_gray needs a Big branch (variant 'bigsmall' or 'big')")
        if int(self.n_segment) < 1:
            problems.append(f"n_segment must be >= 1, got {self.n_segment}")
        if sum(self.big_stages) != len(self.big_filters):
            problems.append(f"big_stages {self.big_stages} must add up to len(big_filters)={len(self.big_filters)}")
        if not len(self.big_stages) == len(self.big_pools) == len(self.dropout):
            problems.append("big_stages, big_pools and dropout need one entry per Big stage")
        if self.n_au < 0 or not (self.n_au or self.bvp or self.resp):
            problems.append("the model needs at least one head (n_au > 0, bvp or resp)")
        if self.variant == "bigsmall" and self.big_filters[-1] != self.small_filters[-1] and self.fusion == "sum":
            problems.append("sum fusion needs the last Big and Small filters to match")
        pooled = self.big_size
        for p in self.big_pools:
            pooled //= p
        if self.variant == "pathways" and (self.shift != "none" or self.big_downsample):
            problems.append("the pathways variant runs the published single-task pathways: shift='none', "
                            "big_downsample=False")
        if self.variant == "bigsmall" and pooled != self.small_size:
            problems.append(f"Big output {pooled}x{pooled} does not match the Small size {self.small_size}")
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
        return cls(**dict(d))
