"""What a training batch is sent to the devices as, and how the jitted step reads it back.

A loader batch (`bigsmall_jax.datasets.input_pipeline`'s layout) has a dozen arrays; each array sent to a
device is one transfer with a fixed cost of its own, which dominated the bytes: on the 2-core CPU twelve
small arrays took longer than the uint8 Big frames, and an accelerator pays the same per-array cost over its
bus. `pack_batch` therefore sends three arrays, and `unpack_batch` (inside the jitted step, where slicing is
free) gives the step its named arrays back:

  =========== ========================= =======================================================
  key         shape / dtype             holds
  =========== ========================= =======================================================
  big         (R, B, B, 3) uint8        the stored Big frames, as the loader gives them
  big_stats   (R, 2) float32            each Big row's video mean and standard deviation
  frames      (N, F) float32            per frame: Small (S*S*3), "au" and "au_mask" (A each),
                                        "bvp", "bvp_mask", "resp", "resp_mask", "frame_mask"
  =========== ========================= =======================================================

with R Big rows (one per clip with Big downsampling), N = clips x T frames and F = 3 S^2 + 2 A + 5.
"record_index" (host bookkeeping) is not sent. `device_big` standardizes the uint8 frames on the device.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Per-frame float columns of a packed batch, in order; "small" and the two AU arrays are wider than 1.
FRAME_KEYS: tuple[str, ...] = ("small", "au", "au_mask", "bvp", "bvp_mask", "resp", "resp_mask", "frame_mask")
_SCALARS = FRAME_KEYS[3:]


def pack_batch(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A loader batch (host arrays) -> the three arrays sent to the devices (see the module docstring).

    Args:
      batch: "big" (R, B, B, 3) uint8 with "big_mean", "big_std" (R,), "small" (N, S, S, 3) and the labels
        and masks of `FRAME_KEYS`; other keys ("record_index") are left out.
    """
    n = batch["small"].shape[0]
    frames = np.concatenate([np.asarray(batch[k], np.float32).reshape(n, -1) for k in FRAME_KEYS], axis=1)
    stats = np.stack([np.asarray(batch["big_mean"], np.float32), np.asarray(batch["big_std"], np.float32)], axis=1)
    return {"big": np.asarray(batch["big"]), "big_stats": stats, "frames": frames}


def is_packed(batch: Mapping) -> bool:
    return "frames" in batch


def unpack_batch(packed: Mapping, small_size: int) -> dict:
    """The named arrays of a packed batch (numpy or jax arrays; slices, no copies on the host).

    Args:
      packed: `pack_batch`'s output, or the per-device part of it (any leading axes before the frame axis
        are kept: (..., N, F)).
      small_size: S, the side of the Small frames (the model's ``small_size``).

    Returns:
      "big", "big_mean", "big_std", "small" (..., N, S, S, 3) and the `FRAME_KEYS` labels and masks: "au",
      "au_mask" (..., N, A), the others (..., N).
    """
    frames = packed["frames"]
    lead, width = frames.shape[:-1], frames.shape[-1]
    small = 3 * small_size * small_size
    n_au, odd = divmod(width - small - len(_SCALARS), 2)
    if odd or n_au < 0:
        raise ValueError(f"packed frames of width {width} do not fit Small frames of side {small_size}")
    out = {"big": packed["big"], "big_mean": packed["big_stats"][..., 0], "big_std": packed["big_stats"][..., 1],
           "small": frames[..., :small].reshape(*lead, small_size, small_size, 3),
           "au": frames[..., small:small + n_au], "au_mask": frames[..., small + n_au:small + 2 * n_au]}
    first = small + 2 * n_au
    out.update({k: frames[..., first + i] for i, k in enumerate(_SCALARS)})
    return out


def device_big(batch, dtype=None):
    """The standardized Big input from a batch's uint8 frames, on the device (inside the jitted step).

    ``(big - mean) / std`` in float32 with the video's statistics, 0 where std is 0: the same float32
    arithmetic as `bigsmall_jax.datasets.preprocess.standardize_big` on the host (tested equal).

    Args:
      batch: "big" (R, B, B, 3) uint8 and "big_mean", "big_std" (R,) float32; a float "big" (already
        standardized) is returned as it is.
      dtype: the result's dtype (default float32).

    Returns:
      (R, B, B, 3) jax array.
    """
    import jax.numpy as jnp  # noqa: PLC0415 (the host half of this module needs no JAX)

    big = batch["big"]
    if big.dtype != jnp.uint8:
        return big if dtype is None else big.astype(dtype)
    mean = batch["big_mean"].astype(jnp.float32)[:, None, None, None]
    std = batch["big_std"].astype(jnp.float32)[:, None, None, None]
    out = (big.astype(jnp.float32) - mean) / std
    out = jnp.where(jnp.isfinite(out), out, jnp.float32(0.0))
    return out if dtype is None else out.astype(dtype)


__all__ = ["FRAME_KEYS", "device_big", "is_packed", "pack_batch", "unpack_batch"]
