"""The BigSmall model family as pure-functional Flax modules (NHWC).

Inputs are clips of ``n_segment`` consecutive frames flattened into the batch axis, frames of a clip
consecutive: ``big`` (N*T, 144, 144, 3) standardized raw frames and ``small`` (N*T, 9, 9, 3)
diff-normalized frames. Every variant takes both and returns a dict of float32 outputs, one row per frame:
``"au"`` (N*T, n_au) logits, ``"bvp"`` (N*T, 1) and ``"resp"`` (N*T, 1) raw regressions.

Variants are configurations of the same modules (`ModelConfig`; the named ones in
`bigsmall_jax.model.variants`), not copied classes:

* ``bigsmall`` (the paper): the Big branch sees the first frame of each segment, its (9, 9, 64) output is
  repeated over the segment and fused (sum, or concat for the ablation) with the Small branch output,
  then one dense head per task.
* ``big``: the Big pathway alone on every frame (the paper's AU baseline).
* ``small``: the Small pathway alone (the paper's pulse and respiration baselines; no shift).

Two ablations change the ``bigsmall`` wiring: ``lateral`` connections between the pathways after their first
block (`lateral_exchange`), and ``big_gray`` (the Big branch reads the mean of the colour channels).
* ``pathways``: those baselines side by side in one module: the Big pathway on every frame for the AUs,
  a Small pathway per wave head (``small_bvp``, ``small_resp``); the published BP4D+ fold-1 models ship
  in this form (`bigsmall_jax.checkpoints.published`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigsmall_jax.model.config import DTYPES, ModelConfig
from bigsmall_jax.model.layers import Dropout, InputConv, avg_pool, conv3x3, relu, temporal_shift


class BigBranch(nn.Module):
    """Convs with average pools and dropout: (M, 144, 144, 3) -> (M, 9, 9, 64)."""

    filters: Sequence[int]
    stages: Sequence[int]
    pools: Sequence[int]
    dropout: Sequence[float]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, from_stem: bool = False,
                 stage_range: tuple[int, int | None] = (0, None)) -> jax.Array:
        """`x`: (M, 144, 144, 3) frames, or with `from_stem` the first conv's output (M, 144, 144, filters[0]).

        `stage_range`: ``(start, stop)`` runs only stages ``start .. stop - 1`` (``None``: to the end), `x`
        then being the input of stage `start` (the lateral-connection models run block 1 and block 2 apart,
        with the same parameters ``conv1``, ``conv2``, ...).
        """
        start, stop = stage_range
        i = sum(self.stages[:start])
        stages = list(zip(self.stages, self.pools, self.dropout, strict=True))[start:stop]
        for n_convs, pool, rate in stages:
            for _ in range(n_convs):
                if i > 0 or not from_stem:  # from_stem: conv1 + ReLU already ran (`big_stem`)
                    name = f"conv{i + 1}"
                    conv = InputConv(self.filters[i], self.dtype, name=name) if i == 0 else conv3x3(
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
    def __call__(self, x: jax.Array, conv_range: tuple[int, int | None] = (0, None)) -> jax.Array:
        """`conv_range`: ``(start, stop)`` runs only shift + conv ``start .. stop - 1`` (as `BigBranch`)."""
        start, stop = conv_range
        for i, features in list(enumerate(self.filters))[start:stop]:
            x = temporal_shift(x, self.n_segment, self.shift, self.fold_div)
            x = relu(conv3x3(features, self.dtype, f"conv{i + 1}")(x))
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


def lateral_exchange(big1: jax.Array, small1: jax.Array, n_segment: int, lateral: str
                     ) -> tuple[jax.Array, jax.Array]:
    """The lateral connections between the pathways' block-1 outputs (the paper's low-level fusion).

    Args:
      big1: (N, Hb, Wb, Cb) Big block-1 output, one per clip; Hb = k * h.
      small1: (N*T, h, w, Cs) Small block-1 output, per frame.
      lateral: ``"big2small"``, ``"small2big"``, ``"both"`` (or ``"none"``).
    Returns:
      (Big block-2 input, Small block-2 input). Big->Small: `big1` average-pooled k x k (stride k), repeated
      over the clip's T frames, then the Small channels: (N*T, h, w, Cb + Cs). Small->Big: `small1` averaged
      over the clip's frames, each value copied to a k x k block (nearest-neighbour upsampling), then the
      Big channels: (N, Hb, Wb, Cs + Cb). Both are taken from the block-1 outputs, not from each other.
    """
    big_in, small_in = big1, small1
    k = big1.shape[1] // small1.shape[1]
    if lateral in ("small2big", "both"):
        nt, h, w, c = small1.shape
        clip_mean = small1.reshape(nt // n_segment, n_segment, h, w, c).mean(axis=1)
        up = jnp.repeat(jnp.repeat(clip_mean, k, axis=1), k, axis=2)
        big_in = jnp.concatenate([up.astype(big1.dtype), big1], axis=-1)
    if lateral in ("big2small", "both"):
        pooled = jnp.repeat(avg_pool(big1, k), n_segment, axis=0)  # clip n -> frames n*T .. n*T+T-1
        small_in = jnp.concatenate([pooled.astype(small1.dtype), small1], axis=-1)
    return big_in, small_in


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
        """Whether the model has a Big branch (every variant but ``small``, and ``pathways`` without AUs)."""
        c = self.config
        return c.variant != "small" and not (c.variant == "pathways" and not c.n_au)

    @property
    def big_per_clip(self) -> bool:
        """Whether the Big branch sees one frame per clip (Big temporal downsampling) rather than every frame."""
        return self.config.variant == "bigsmall" and self.config.big_downsample

    def big_frames(self, big: jax.Array, given_per_clip: bool = False) -> jax.Array:
        """The Big frames the Big branch sees, in the compute dtype: (N*T, ...) -> (N, ...) with Big temporal
        downsampling (the first frame of each clip), else all of them; `given_per_clip`: `big` already holds
        only those (N, ...) frames."""
        c = self.config
        b = big[:: c.n_segment] if self.big_per_clip and not given_per_clip else big
        if c.big_gray:  # the plain mean of the three channels (not luminance weights), in float32
            b = b.astype(jnp.float32).mean(axis=-1, keepdims=True)
        return b.astype(DTYPES[c.dtype])

    def big_given_per_clip(self, big, small) -> bool:
        """Whether `big` holds only the frames the Big branch sees, one per clip ((N, ...) for (N*T, ...) Small
        frames, what the trainer sends to the devices), rather than every frame."""
        t = self.config.n_segment
        return self.big_per_clip and t > 1 and big.shape[0] * t == small.shape[0]

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
        elif big.shape[0] != small.shape[0] and not self.big_given_per_clip(big, small):
            raise ValueError(f"big and small inputs must have the same number of frames; got {big.shape[0]} "
                             f"and {small.shape[0]}")
        if small.shape[0] == 0 or (self.uses_segments and small.shape[0] % c.n_segment):
            raise ValueError(f"the batch must be a whole number of clips: N*T frames with T={c.n_segment} "
                             f"(n_segment); got {small.shape[0]} frames")

    @nn.compact
    def __call__(self, big: jax.Array, small: jax.Array, train: bool = False,
                 from_stem: bool = False) -> dict[str, jax.Array]:
        """Outputs for (N*T, ...) frames; with `from_stem`, `big` is `big_stem`'s output for them instead (the
        Big branch then starts after its first conv: `bigsmall_jax.runtime.Forward` runs that conv apart). With
        Big downsampling `big` may also be (N, ...), the first frame of each clip only (`big_given_per_clip`).

        With ``mutable=["intermediates"]`` the module records the features entering the heads (``"fused"``)
        and, with lateral connections, the block-2 inputs (``"big_block2_in"``, ``"small_block2_in"``)."""
        c = self.config
        self.check_inputs(big, small, from_stem)
        dtype = DTYPES[c.dtype]
        big_branch = functools.partial(BigBranch, c.big_filters, c.big_stages, c.big_pools, c.dropout, dtype,
                                       name="big")
        small_branch = functools.partial(SmallBranch, c.small_filters, c.n_segment, c.shift, c.fold_div, dtype,
                                         name="small")
        b = big.astype(dtype) if from_stem else self.big_frames(big, self.big_given_per_clip(big, small))
        if c.variant == "big":
            features = big_branch()(b, train, from_stem)
        elif c.variant == "small":
            features = small_branch()(small.astype(dtype))
        elif c.variant == "pathways":
            return self._pathways(b, small.astype(dtype), train, from_stem)
        elif c.lateral == "none":
            features = fuse(big_branch()(b, train, from_stem), small_branch()(small.astype(dtype)), c.n_segment,
                            c.fusion)
        else:
            big_net, small_net = big_branch(), small_branch()
            half = len(c.small_filters) // 2
            big_in, small_in = lateral_exchange(big_net(b, train, from_stem, stage_range=(0, 1)),
                                                small_net(small.astype(dtype), conv_range=(0, half)),
                                                c.n_segment, c.lateral)
            self.sow("intermediates", "big_block2_in", big_in)
            self.sow("intermediates", "small_block2_in", small_in)
            features = fuse(big_net(big_in, train, stage_range=(1, None)),
                            small_net(small_in, conv_range=(half, None)), c.n_segment, c.fusion)
        self.sow("intermediates", "fused", features)
        return {
            task: Head(c.dense_units, size, dtype, name=task)(features).astype(jnp.float32)
            for task, size in c.heads
        }

    def _pathways(self, big: jax.Array, small: jax.Array, train: bool, from_stem: bool) -> dict[str, jax.Array]:
        """The ``pathways`` variant: each head on its own pathway (Big for ``au``, a Small per wave head)."""
        c = self.config
        dtype = DTYPES[c.dtype]
        out = {}
        for task, size in c.heads:
            if task == "au":
                features = BigBranch(c.big_filters, c.big_stages, c.big_pools, c.dropout, dtype, name="big")(
                    big, train, from_stem)
            else:
                features = SmallBranch(c.small_filters, c.n_segment, c.shift, c.fold_div, dtype,
                                       name=f"small_{task}")(small)
            out[task] = Head(c.dense_units, size, dtype, name=task)(features).astype(jnp.float32)
        return out


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


def abstract_variables(model: BigSmall):
    """Shapes and dtypes (`jax.ShapeDtypeStruct` leaves) of `model`'s variables, without computing anything."""
    return jax.eval_shape(lambda: init_variables(model, jax.random.key(0)))


def count_params(params) -> int:
    """The number of scalars in a tree of arrays (e.g. ``variables["params"]``)."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
