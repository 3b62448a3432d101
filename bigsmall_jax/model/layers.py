"""The layers of the BigSmall model: the temporal shift, and ops written for speed on XLA:CPU.

All work on NHWC arrays; `relu`, `avg_pool`, `Dropout` and `InputConv` give the same values as the plain
Flax ops they replace (docs/benchmark.md measures each).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigsmall_jax.model.config import SHIFT_KINDS


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


def conv3x3(features: int, dtype, name: str) -> nn.Conv:
    """A 3x3 conv, stride 1, one pixel of zero padding each side (PyTorch's ``Conv2d(k=3, padding=1)``):
    (M, H, W, C) -> (M, H, W, `features`)."""
    return nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), dtype=dtype, name=name)


class InputConv(nn.Module):
    """`conv3x3` for few input channels: the same parameters ("kernel" (3, 3, C, F) LeCun-normal, "bias" (F,)
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
