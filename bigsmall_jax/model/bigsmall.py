"""The BigSmall model family as pure-functional Flax modules (NHWC).

Inputs are clips of ``n_segment`` consecutive frames flattened into the batch axis, frames of a clip
consecutive: ``big`` (N*T, 144, 144, 3) standardized raw frames and ``small`` (N*T, 9, 9, 3)
diff-normalized frames. Every variant takes both and returns a dict of float32 outputs, one row per frame:
``"au"`` (N*T, n_au) logits, ``"bvp"`` (N*T, 1) and ``"resp"`` (N*T, 1) raw regressions.

Variants are configurations of the same modules (`ModelConfig`), not copied classes:

* ``bigsmall`` (the paper): the Big branch sees the first frame of each segment, its (9, 9, 64) output is
  repeated over the segment and fused (sum, or concat for the ablation) with the Small branch output,
  then one dense head per task.
* ``big``: the Big pathway alone on every frame (the paper's AU baseline).
* ``small``: the Small pathway alone (the paper's pulse and respiration baselines; no shift).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigsmall_jax.errors import UserError

SHIFT_KINDS = ("wrap", "zero", "none")
VARIANTS = ("bigsmall", "big", "small")
FUSIONS = ("sum", "concat")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a model of the family. Stored as JSON beside every checkpoint.

    Attributes:
      variant: ``"bigsmall"``, ``"big"`` (Big pathway alone) or ``"small"`` (Small pathway alone).
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
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "model config") -> ModelConfig:
        """Builds a config, refusing unknown keys with a `UserError` that lists the valid ones."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise UserError(f"{source}: unknown model config key(s) {unknown}; valid keys: {sorted(valid)}")
        return cls(**dict(d))


def pathway_config(task: str, n_segment: int = 3, **overrides) -> ModelConfig:
    """The paper's single-task baselines: ``task`` is ``"au"`` (Big pathway), ``"bvp"`` or ``"resp"``
    (Small pathway, no shift)."""
    if task == "au":
        base = dict(variant="big", bvp=False, resp=False, shift="none", big_downsample=False)
    elif task in ("bvp", "resp"):
        base = dict(variant="small", n_au=0, bvp=task == "bvp", resp=task == "resp", shift="none")
    else:
        raise UserError(f"unknown pathway task {task!r}; valid: au, bvp, resp")
    return ModelConfig(n_segment=n_segment, **{**base, **overrides})


def temporal_shift(x: jax.Array, n_segment: int, kind: str = "wrap", fold_div: int = 3) -> jax.Array:
    """Shifts a share of channels one frame along time, within each clip.

    Args:
      x: (N*T, H, W, C), frames of a clip consecutive.
      n_segment: T, frames per clip.
      kind: ``"wrap"`` (WTSM: what falls off one end of the clip comes back at the other, via
        ``jnp.roll``), ``"zero"`` (TSM: shifted-out values dropped, zeros shifted in) or ``"none"``.
      fold_div: with ``fold = C // fold_div``, channels [0, fold) take the next frame's values
        (a shift back in time), channels [fold, 2*fold) the previous frame's, the rest stay.
    Returns:
      (N*T, H, W, C), same dtype.
    """
    if kind == "none":
        return x
    if kind not in SHIFT_KINDS:
        raise ValueError(f"unknown temporal shift {kind!r}; valid: {SHIFT_KINDS}")
    nt, h, w, c = x.shape
    if nt % n_segment:
        raise ValueError(f"temporal_shift: {nt} frames are not a whole number of clips of {n_segment}")
    fold = c // fold_div
    x = x.reshape(nt // n_segment, n_segment, h, w, c)
    back, fwd, rest = x[..., :fold], x[..., fold : 2 * fold], x[..., 2 * fold :]
    if kind == "wrap":
        back = jnp.roll(back, -1, axis=1)
        fwd = jnp.roll(fwd, 1, axis=1)
    else:
        pad = [(0, 0)] * 5
        back = jnp.pad(back[:, 1:], [pad[0], (0, 1), *pad[2:]])
        fwd = jnp.pad(fwd[:, :-1], [pad[0], (1, 0), *pad[2:]])
    return jnp.concatenate([back, fwd, rest], axis=-1).reshape(nt, h, w, c)


# ----------------------------------------------------------------------------------------------------------
# Ops written for speed on XLA:CPU (docs/benchmark.md measures each); same values as the plain Flax ops.


@jax.custom_vjp
def relu(x: jax.Array) -> jax.Array:
    """max(x, 0) whose gradient is taken from the output: g * sign(y), y = relu(x) (= g where x > 0, else 0).

    The same values and gradients as `flax.linen.relu` (for finite g), but the backward pass needs only the
    output: the pre-activation is not kept, so conv + bias + ReLU fuse into one kernel that writes one array,
    and the mask multiply fuses into the next convolution's input-gradient kernel.
    """
    return jnp.maximum(x, 0)


def _relu_fwd(x):
    y = jnp.maximum(x, 0)
    return y, y


def _relu_bwd(y, g):
    return (g * jnp.sign(y).astype(g.dtype),)


relu.defvjp(_relu_fwd, _relu_bwd)


def avg_pool(x: jax.Array, window: int) -> jax.Array:
    """Average pool with stride = window and VALID padding, as `flax.linen.avg_pool` computes it, written as
    a reshape and a mean (XLA:CPU runs reduce-window and its gradient several times slower).

    Args:
      x: (M, H, W, C).
      window: pool size p.
    Returns:
      (M, H // p, W // p, C); rows and columns past the last whole window are dropped.
    """
    m, h, w, c = x.shape
    ho, wo = h // window, w // window
    x = x[:, : ho * window, : wo * window]
    return x.reshape(m, ho, window, wo, window, c).mean(axis=(2, 4))


class Dropout(nn.Module):
    """Inverted dropout like `flax.linen.Dropout`, drawing 8 random bits per element instead of 32.

    One 32-bit random word decides 4 elements (bytes compared with round(keep * 256)), a quarter of
    flax's random-number work, which dominated the cost of dropout on a CPU. Exact for keep probabilities
    that are multiples of 1/256 (the paper's 0.75 and 0.5); other rates, and channel counts that are not a
    multiple of 4, use `flax.linen.Dropout`. Randomness comes from the ``"dropout"`` RNG stream.
    """

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        threshold = round(keep * 256)
        if x.shape[-1] % 4 or threshold / 256 != keep:
            return nn.Dropout(self.rate, deterministic=False)(x)
        words = jax.random.bits(self.make_rng("dropout"), (*x.shape[:-1], x.shape[-1] // 4), jnp.uint32)
        shifts = jnp.arange(4, dtype=jnp.uint32) * jnp.uint32(8)
        byte = (words[..., None] >> shifts) & jnp.uint32(255)
        mask = (byte < jnp.uint32(threshold)).reshape(x.shape)
        return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros_like(x))


def _conv(features: int, dtype, name: str) -> nn.Conv:
    # 3x3, stride 1, one pixel of zero padding each side: PyTorch's Conv2d(k=3, padding=1).
    return nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), dtype=dtype, name=name)


class InputConv(nn.Module):
    """`_conv` for few input channels: the same parameters ("kernel" (3, 3, C, F) LeCun-normal, "bias" (F,)
    zeros) and values, computed with the input and the kernel padded with zero channels to a multiple of
    `channel_multiple`. XLA:CPU (YNNPACK) runs the Big branch's 3-channel first convolution at about half
    the speed of a 4-channel one; the zero channel adds a third to that layer's multiply-adds (1.3% of the
    model's, and of the FLOPs XLA counts for it)."""

    features: int
    dtype: Any = jnp.float32
    channel_multiple: int = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, c, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        pad = -c % self.channel_multiple
        if pad:
            x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, pad)))
            kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, pad), (0, 0)))
        y = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias


class BigBranch(nn.Module):
    """Convs with average pools and dropout: (M, 144, 144, 3) -> (M, 9, 9, 64)."""

    filters: Sequence[int]
    stages: Sequence[int]
    pools: Sequence[int]
    dropout: Sequence[float]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, from_stem: bool = False) -> jax.Array:
        """`x`: (M, 144, 144, 3) frames, or with `from_stem` the first conv's output (M, 144, 144, filters[0])."""
        i = 0
        for n_convs, pool, rate in zip(self.stages, self.pools, self.dropout, strict=True):
            for _ in range(n_convs):
                if i > 0 or not from_stem:  # from_stem: conv1 + ReLU already ran (`big_stem`)
                    name = f"conv{i + 1}"
                    conv = InputConv(self.filters[i], self.dtype, name=name) if i == 0 else _conv(
                        self.filters[i], self.dtype, name)
                    x = relu(conv(x))
                i += 1
            x = avg_pool(x, pool)
            x = Dropout(rate)(x, deterministic=not train)
        return x


class SmallBranch(nn.Module):
    """Convs each preceded by a temporal shift: (N*T, 9, 9, 3) -> (N*T, 9, 9, 64)."""

    filters: Sequence[int]
    n_segment: int
    shift: str = "wrap"
    fold_div: int = 3
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, features in enumerate(self.filters):
            x = temporal_shift(x, self.n_segment, self.shift, self.fold_div)
            x = relu(_conv(features, self.dtype, f"conv{i + 1}")(x))
        return x


class Head(nn.Module):
    """Flatten (H, W, C order) -> dense -> ReLU -> dense."""

    units: int
    out: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.units, dtype=self.dtype, name="fc1")(x))
        return nn.Dense(self.out, dtype=self.dtype, name="fc2")(x)


def fuse(big: jax.Array, small: jax.Array, n_segment: int, fusion: str) -> jax.Array:
    """Repeats per-clip Big features over the clip's frames and fuses them with per-frame Small features.

    Args:
      big: (N, H, W, C) per clip, or (N*T, H, W, C) per frame when Big ran on every frame.
      small: (N*T, H, W, C') per frame.
    Returns:
      (N*T, H, W, C) for ``sum``, (N*T, H, W, C + C') for ``concat``.
    """
    if big.shape[0] != small.shape[0]:
        big = jnp.repeat(big, n_segment, axis=0)  # clip n -> frames n*T .. n*T+T-1
    return big + small if fusion == "sum" else jnp.concatenate([big, small], axis=-1)


class BigSmall(nn.Module):
    """The configurable BigSmall family; see `ModelConfig`."""

    config: ModelConfig

    @property
    def uses_segments(self) -> bool:
        """Whether frames are grouped in clips (temporal shift or Big downsampling)."""
        c = self.config
        shifts = c.variant != "big" and c.shift != "none"
        return shifts or self.big_per_clip

    @property
    def has_big(self) -> bool:
        return self.config.variant != "small"

    @property
    def big_per_clip(self) -> bool:
        """Whether the Big branch sees one frame per clip (Big temporal downsampling) rather than every frame."""
        return self.config.variant == "bigsmall" and self.config.big_downsample

    def big_frames(self, big: jax.Array) -> jax.Array:
        """The Big frames the Big branch sees, in the compute dtype: (N*T, ...) -> (N, ...) with Big temporal
        downsampling (the first frame of each clip), else all of them."""
        c = self.config
        b = big.astype(DTYPES[c.dtype])
        return b[:: c.n_segment] if self.big_per_clip else b

    def check_inputs(self, big, small, from_stem: bool = False) -> None:
        """Raises ValueError naming the expected shapes, before any tracing error can."""
        c = self.config
        for name, x, size in (("big", big, c.big_size), ("small", small, c.small_size)):
            if from_stem and name == "big":
                continue
            if x.ndim != 4 or tuple(x.shape[1:]) != (size, size, 3):
                raise ValueError(f"{name} input must be (N*T, {size}, {size}, 3) NHWC with T={c.n_segment} "
                                 f"frames per clip; got shape {tuple(x.shape)}")
        if from_stem:
            n_big = small.shape[0] // c.n_segment if self.big_per_clip else small.shape[0]
            want = (n_big, c.big_size, c.big_size, c.big_filters[0])
            if not self.has_big or tuple(big.shape) != want:
                raise ValueError(f"from_stem: big must be `big_stem`'s output {want} for a {c.variant} model; "
                                 f"got shape {tuple(big.shape)}")
        elif big.shape[0] != small.shape[0]:
            raise ValueError(f"big and small inputs must have the same number of frames; got {big.shape[0]} "
                             f"and {small.shape[0]}")
        if small.shape[0] == 0 or (self.uses_segments and small.shape[0] % c.n_segment):
            raise ValueError(f"the batch must be a whole number of clips: N*T frames with T={c.n_segment} "
                             f"(n_segment); got {small.shape[0]} frames")

    @nn.compact
    def __call__(self, big: jax.Array, small: jax.Array, train: bool = False,
                 from_stem: bool = False) -> dict[str, jax.Array]:
        """Outputs for (N*T, ...) frames; with `from_stem`, `big` is `big_stem`'s output for them instead (the
        Big branch then starts after its first conv: `bigsmall_jax.runtime.Forward` runs that conv apart)."""
        c = self.config
        self.check_inputs(big, small, from_stem)
        dtype = DTYPES[c.dtype]
        big_branch = functools.partial(BigBranch, c.big_filters, c.big_stages, c.big_pools, c.dropout, dtype,
                                       name="big")
        small_branch = functools.partial(SmallBranch, c.small_filters, c.n_segment, c.shift, c.fold_div, dtype,
                                         name="small")
        b = big.astype(dtype) if from_stem else self.big_frames(big)
        if c.variant == "big":
            features = big_branch()(b, train, from_stem)
        elif c.variant == "small":
            features = small_branch()(small.astype(dtype))
        else:
            features = fuse(big_branch()(b, train, from_stem), small_branch()(small.astype(dtype)), c.n_segment,
                            c.fusion)
        return {
            task: Head(c.dense_units, size, dtype, name=task)(features).astype(jnp.float32)
            for task, size in c.heads
        }


def big_stem(model: BigSmall, variables, big: jax.Array) -> jax.Array:
    """The Big branch's first conv + bias + ReLU on the frames it sees: (N*T, 144, 144, 3) frames ->
    (N or N*T, 144, 144, filters[0]) activations, what ``model.apply(..., from_stem=True)`` takes as `big`."""
    c = model.config
    if not model.has_big:
        raise ValueError(f"a {c.variant} model has no Big branch")
    conv = InputConv(c.big_filters[0], DTYPES[c.dtype])
    return relu(conv.apply({"params": variables["params"]["big"]["conv1"]}, model.big_frames(big)))


def build_model(config: ModelConfig | Mapping[str, Any] | None = None, **overrides) -> BigSmall:
    """A `BigSmall` module from a config (or a dict of its fields, or the paper's defaults)."""
    if config is None:
        config = ModelConfig(**overrides)
    elif isinstance(config, Mapping):
        config = ModelConfig.from_dict({**config, **overrides})
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    return BigSmall(config)


def dummy_inputs(config: ModelConfig, n_clips: int = 1, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    """Zero inputs of the right shapes for `n_clips` clips."""
    n = n_clips * config.n_segment
    return (jnp.zeros((n, config.big_size, config.big_size, 3), dtype),
            jnp.zeros((n, config.small_size, config.small_size, 3), dtype))


def init_variables(model: BigSmall, rng: jax.Array, n_clips: int = 1):
    """Initial variables ({"params": ...}) for `model`."""
    return model.init(rng, *dummy_inputs(model.config, n_clips), train=False)


def count_params(params) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


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
}
# The paper's single-task baselines, which together do what one BigSmall does.
SINGLE_TASK_VARIANTS: tuple[str, ...] = ("big_au", "small_bvp", "small_resp")


def named_config(name: str, **overrides) -> ModelConfig:
    """The `ModelConfig` of a named variant (see `NAMED_VARIANTS`), with field overrides."""
    if name not in NAMED_VARIANTS:
        raise UserError(f"unknown model variant {name!r}; valid: {sorted(NAMED_VARIANTS)}")
    return ModelConfig(**{**NAMED_VARIANTS[name], **overrides})
