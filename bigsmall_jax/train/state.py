"""The train state (params + AdamW state + step) and the initial weights (Flax's or PyTorch's init)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from bigsmall_jax.errors import UserError
from bigsmall_jax.model import BigSmall, init_variables

INITS = ("flax", "torch", "bp4d-fold1")
# Where each BigSmall layer group finds its weights in the published single-task models (`bp4d-fold1`):
# Big convs and AU head from the Big AU model, the Small convs and pulse head from the Small pulse model,
# the respiration head from the Small respiration model.
PUBLISHED_SOURCES = {"big": "big", "small": "small_bvp", "au": "au", "bvp": "bvp", "resp": "resp"}


class TrainState(train_state.TrainState):
    """flax's TrainState (step, params, opt_state; apply_fn and tx static)."""


def torch_style_init(params, key: jax.Array):
    """Re-draws every conv / dense layer as PyTorch's default init does (what the paper trained from).

    PyTorch's ``Conv2d`` / ``Linear`` draw weights from kaiming_uniform(a=sqrt(5)) and biases alike, both
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = kh*kw*in_channels (conv) or in_features (dense).
    Flax's defaults (lecun_normal weights, zero biases) give weights sqrt(3) times larger and no biases.

    Args:
      params: a params pytree of `BigSmall` (leaves ``kernel`` (kh, kw, in, out) / (in, out) and ``bias``).
      key: PRNG key.
    Returns:
      A pytree of the same structure and shapes, float32.
    """
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    kernels = {tuple(str(getattr(k, "key", k)) for k in path[:-1]): leaf for path, leaf in flat
               if str(getattr(path[-1], "key", path[-1])) == "kernel"}
    out = []
    for i, (path, leaf) in enumerate(flat):
        layer = tuple(str(getattr(k, "key", k)) for k in path[:-1])
        kernel = kernels[layer]
        fan_in = int(np.prod(kernel.shape[:-1]))
        bound = 1.0 / math.sqrt(fan_in)
        out.append(jax.random.uniform(jax.random.fold_in(key, i), leaf.shape, jnp.float32, -bound, bound))
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), out)


def published_init(params):
    """`params` of a BigSmall replaced by the shipped BP4D+ fold-1 weights (`PUBLISHED_SOURCES`).

    A warm start from real faces: every conv and dense layer of BigSmall has the shape of its published
    single-task counterpart (the temporal shift and the Big + Small sum have no weights), so all of them
    start from real-data features and fine-tune together.

    Raises:
      UserError: a layer the published models lack or of another shape (another variant or width).
    """
    from bigsmall_jax.checkpoints import load_checkpoint

    published = load_checkpoint("bp4d-fold1")[1]["params"]
    out = {}
    for group, layers in params.items():
        source = published.get(PUBLISHED_SOURCES.get(group, ""), {})
        want = jax.tree_util.tree_map(jnp.shape, layers)
        if jax.tree_util.tree_map(jnp.shape, source) != want:
            raise UserError(f"train.init='bp4d-fold1': layer group {group!r} has no published counterpart of "
                            f"the same shapes (only the default BigSmall widths can start from bp4d-fold1; "
                            f"set train.init=flax or torch)")
        out[group] = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), source)
    return out


def create_train_state(model: BigSmall, tx: optax.GradientTransformation, seed: int,
                       params=None, init: str = "flax") -> TrainState:
    """A fresh train state.

    Args:
      model, tx: the module and the optimizer.
      seed: params are drawn with key ``fold_in(PRNGKey(seed), 0)``.
      params: start from these instead (e.g. converted PyTorch weights).
      init: ``"flax"`` (Flax's default initializers), ``"torch"`` (`torch_style_init`, PyTorch's defaults)
        or ``"bp4d-fold1"`` (`published_init`: the published BP4D+ models' weights).
    """
    if params is None:
        key = jax.random.fold_in(jax.random.PRNGKey(seed), 0)
        params = init_variables(model, key)["params"]
        if init == "torch":
            params = torch_style_init(params, jax.random.fold_in(key, 1))
        elif init == "bp4d-fold1":
            params = published_init(params)
        elif init != "flax":
            raise UserError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx)
