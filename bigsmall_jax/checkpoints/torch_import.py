"""PyTorch BigSmall state dicts (multitask or single pathway) -> a `ModelConfig` and Flax variables.

``python -m bigsmall_jax.convert`` writes the result as a model checkpoint directory;
`bigsmall_jax.checkpoints.load_checkpoint` imports a ``.pth`` on the fly. Works without PyTorch (see
`bigsmall_jax.checkpoints.pth`). The model is detected from the keys:

* ``big_conv*`` + ``small_conv*`` + ``au_fc*``/``bvp_fc*``/``resp_fc*``: multitask BigSmall; the shapes
  also tell concat fusion (wider first dense layers), the lateral connections (a block-2 conv with more
  input channels than block 1 gives out) and the grayscale Big input (``big_conv1`` with one input channel).
  What the keys cannot tell (which temporal shift, whether Big sees every frame) is the paper's model unless
  a variant is named (`convert_file`'s `variant`: a ``NAMED_VARIANTS`` name or the authors' class name);
* ``big_conv*`` + ``out_fc*``: the Big pathway alone (AU logits);
* ``small_conv*`` + ``out_fc*``: the Small pathway alone, a pulse model unless ``--task resp`` or a file
  name containing ``Resp`` says respiration (``Heart`` says pulse).

Layouts: conv kernels OIHW -> HWIO; ``Linear.weight`` (out, in) -> Dense kernel (in, out); the first dense
layer's input is reordered from PyTorch's (C, H, W) flatten to NHWC's (H, W, C).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar

import jax
import numpy as np

from bigsmall_jax.checkpoints.pth import load_state_dict
from bigsmall_jax.errors import UserError, file_error
from bigsmall_jax.model import ModelConfig, abstract_variables, build_model, named_config, variant_name

T = TypeVar("T")


def _strip_prefix(state: dict[str, T]) -> dict[str, T]:
    """The state dict without the ``module.`` prefix `torch.nn.DataParallel` adds to every key."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _conv_filters(state, branch: str) -> tuple[int, ...]:
    """Output channels of ``{branch}_conv1``, ``{branch}_conv2``, ... in order."""
    idx = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(rf"{branch}_conv(\d+)\.weight", k)))
    return tuple(int(state[f"{branch}_conv{i}.weight"].shape[0]) for i in idx)


def _in_channels(state, key: str) -> int | None:
    """Input channels of conv ``key`` (``big_conv3``), or None if it is absent."""
    weight = state.get(f"{key}.weight")
    return None if weight is None or len(weight.shape) != 4 else int(weight.shape[1])


def _wiring(state, big_filters: tuple[int, ...], small_filters: tuple[int, ...]) -> dict[str, object]:
    """``lateral`` and ``big_gray`` as the conv input channels show them (`ModelConfig` defaults elsewhere)."""
    defaults = ModelConfig()
    block1 = defaults.big_stages[0]  # Big convs of block 1
    half = len(small_filters) // 2  # Small convs of block 1
    small2big = len(big_filters) > block1 and (_in_channels(state, f"big_conv{block1 + 1}") or 0) > big_filters[
        block1 - 1]
    big2small = half > 0 and (_in_channels(state, f"small_conv{half + 1}") or 0) > small_filters[half - 1]
    lateral = {(False, False): "none", (True, False): "big2small", (False, True): "small2big",
               (True, True): "both"}[(big2small, small2big)]
    return {"lateral": lateral, "big_gray": _in_channels(state, "big_conv1") == 1}


def infer_config(state: dict[str, np.ndarray], task: str | None = None, n_segment: int = 3,
                 source: str = "state dict") -> ModelConfig:
    """The `ModelConfig` a (prefix-stripped) PyTorch state dict belongs to, read from its shapes only (the
    values may be anything with a ``.shape``)."""
    has_big = "big_conv1.weight" in state
    has_small = "small_conv1.weight" in state
    has_out = "out_fc2.weight" in state
    try:
        if has_big and has_small:
            n_au = int(state["au_fc2.weight"].shape[0]) if "au_fc2.weight" in state else 0
            fc1 = next(state[f"{t}_fc1.weight"] for t in ("au", "bvp", "resp") if f"{t}_fc1.weight" in state)
            big_c = _conv_filters(state, "big")[-1]
            small_c = _conv_filters(state, "small")[-1]
            fusion = "concat" if fc1.shape[1] == (big_c + small_c) * 81 else "sum"
            big_filters, small_filters = _conv_filters(state, "big"), _conv_filters(state, "small")
            return ModelConfig(variant="bigsmall", n_segment=n_segment, big_filters=big_filters,
                               small_filters=small_filters, dense_units=int(fc1.shape[0]),
                               n_au=n_au, bvp="bvp_fc2.weight" in state, resp="resp_fc2.weight" in state,
                               fusion=fusion, **_wiring(state, big_filters, small_filters))
        if has_big and has_out:
            n_out = int(state["out_fc2.weight"].shape[0])
            return ModelConfig(variant="big", n_segment=n_segment, big_filters=_conv_filters(state, "big"),
                               dense_units=int(state["out_fc1.weight"].shape[0]), n_au=n_out, bvp=False,
                               resp=False, shift="none", big_downsample=False,
                               big_gray=_in_channels(state, "big_conv1") == 1)
        if has_small and has_out:
            task = task or "bvp"
            if task not in ("bvp", "resp"):
                raise UserError(f"{source}: a Small pathway predicts bvp or resp, not {task!r}")
            return ModelConfig(variant="small", n_segment=n_segment, small_filters=_conv_filters(state, "small"),
                               dense_units=int(state["out_fc1.weight"].shape[0]), n_au=0, bvp=task == "bvp",
                               resp=task == "resp", shift="none")
    except (KeyError, IndexError, StopIteration) as e:
        raise file_error(source, f"incomplete BigSmall state dict (missing {e})") from None
    raise file_error(source, "not a BigSmall state dict: expected big_conv*/small_conv* keys with "
                             "au_fc*/bvp_fc*/resp_fc* or out_fc* heads; found " + ", ".join(sorted(state)[:8]))


def _torch_name(flax_path: tuple[str, ...], config: ModelConfig) -> str:
    """PyTorch key of a Flax parameter, e.g. ('big', 'conv1', 'kernel') -> 'big_conv1.weight'."""
    module, layer, leaf = flax_path
    suffix = "weight" if leaf == "kernel" else "bias"
    if module in ("big", "small"):
        return f"{module}_{layer}.{suffix}"
    prefix = "out" if config.variant != "bigsmall" else module
    return f"{prefix}_{layer}.{suffix}"


def _to_flax(value: np.ndarray, flax_path: tuple[str, ...], target_shape: tuple[int, ...]) -> np.ndarray:
    """Converts one PyTorch array to the Flax layout of `target_shape`."""
    module, layer, leaf = flax_path
    if leaf == "bias":
        return value
    if value.ndim == 4:  # conv OIHW -> HWIO
        return value.transpose(2, 3, 1, 0)
    if layer == "fc1":  # (out, C*H*W) in C,H,W order -> (H*W*C, out)
        units, n_in = value.shape
        hw = 81  # 9 x 9 feature map
        if n_in % hw:
            raise ValueError(f"first dense layer input {n_in} is not a multiple of 9*9")
        c = n_in // hw
        return value.reshape(units, c, 9, 9).transpose(2, 3, 1, 0).reshape(n_in, units)
    return value.T


def state_dict_to_variables(state: dict[str, np.ndarray], config: ModelConfig, source: str = "state dict"):
    """Maps a prefix-stripped PyTorch state dict onto the Flax variables of `config`.

    Raises:
      UserError: a key missing, extra, or of the wrong shape (naming the key).
    """
    flat = _flax_params(config)
    used = set()
    params: dict = {}
    for flax_path, leaf in flat.items():
        name = _torch_name(flax_path, config)
        if name not in state:
            raise file_error(source, f"missing key '{name}' (needed for {'/'.join(flax_path)})")
        value = np.asarray(state[name], dtype=np.float32)
        try:
            converted = _to_flax(value, flax_path, tuple(leaf.shape))
        except ValueError as e:
            raise file_error(source, f"key '{name}': {e}") from None
        if converted.shape != tuple(leaf.shape):
            raise file_error(source, f"key '{name}' has shape {tuple(value.shape)}, which does not fit "
                                     f"{'/'.join(flax_path)} of shape {tuple(leaf.shape)}")
        if not np.all(np.isfinite(converted)):
            raise file_error(source, f"key '{name}' holds NaN or inf values")
        used.add(name)
        node = params
        for part in flax_path[:-1]:
            node = node.setdefault(part, {})
        node[flax_path[-1]] = np.ascontiguousarray(converted)
    extra = sorted(set(state) - used)
    if extra:
        raise file_error(source, f"unexpected key(s) {extra} for a {config.variant} model")
    return {"params": params}


def _flax_params(config: ModelConfig) -> dict[tuple[str, ...], jax.ShapeDtypeStruct]:
    """The abstract Flax parameters of `config`'s model by path, e.g. ``('big', 'conv1', 'kernel')``."""
    target = abstract_variables(build_model(config))["params"]
    return {tuple(str(getattr(k, "key", k)) for k in path): leaf
            for path, leaf in jax.tree_util.tree_leaves_with_path(target)}


def _torch_shape(flax_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The PyTorch shape of a Flax parameter's: HWIO kernels -> OIHW, (in, out) kernels -> (out, in)."""
    if len(flax_shape) == 4:
        h, w, i, o = flax_shape
        return (o, i, h, w)
    return tuple(reversed(flax_shape))


def check_shapes(shapes: dict[str, tuple[int, ...]], config: ModelConfig, source: str = "state dict") -> None:
    """Checks the keys and shapes of a prefix-stripped state dict against `config`'s model, before its data
    is read (`state_dict_to_variables` checks the arrays themselves).

    Raises:
      UserError: a key missing, extra, or of the wrong shape (naming the key).
    """
    expected = {_torch_name(flax_path, config): (flax_path, tuple(leaf.shape))
                for flax_path, leaf in _flax_params(config).items()}
    for name, (flax_path, flax_shape) in expected.items():
        if name not in shapes:
            raise file_error(source, f"missing key '{name}' (needed for {'/'.join(flax_path)})")
        if tuple(shapes[name]) != _torch_shape(flax_shape):
            raise file_error(source, f"key '{name}' has shape {tuple(shapes[name])}, which does not fit "
                                     f"{'/'.join(flax_path)} of shape {flax_shape}")
    extra = sorted(set(shapes) - set(expected))
    if extra:
        raise file_error(source, f"unexpected key(s) {extra} for a {config.variant} model")


def task_from_filename(path: str | Path) -> str | None:
    """The task a single-pathway file's name says (any case): ``"resp"`` for ``*Resp*``, ``"bvp"`` for
    ``*Heart*``, else None."""
    name = Path(path).name.lower()
    if "resp" in name:
        return "resp"
    if "heart" in name:
        return "bvp"
    return None


def variant_config(variant: str, task: str | None = None, n_segment: int = 3,
                   source: str = "state dict") -> ModelConfig:
    """The `ModelConfig` of a named variant (`NAMED_VARIANTS` name or the authors' class name) for importing.

    A Small pathway's task comes from the variant (``small_bvp``/``small_resp``); the authors' one class
    ``SmallPathwayBaseModel`` takes it from `task` (default pulse). A task that contradicts the variant is an
    error.
    """
    name = variant_name(variant)
    if variant == "SmallPathwayBaseModel" and task == "resp":
        name = "small_resp"
    config = named_config(name, n_segment=n_segment)
    if task and config.variant == "small" and config.heads[0][0] != task:
        raise file_error(source, f"variant {variant!r} predicts {config.heads[0][0]}, not {task!r}")
    if task and config.variant != "small":
        raise file_error(source, f"--task applies to a Small pathway, not to variant {variant!r}")
    return config


def convert_file(path: str | Path, task: str | None = None, n_segment: int = 3, variant: str | None = None):
    """Reads a ``.pth`` and returns ``(config, variables)``. `task` overrides the file name's hint.

    `variant` (a `NAMED_VARIANTS` name or the authors' class name) names the model; without it the model is
    the one the keys and shapes show (`infer_config`), the paper's model where several fit. Either way every
    key and shape is checked against the model from the file's declared shapes, before any tensor data is
    read; a file that does not fit the named variant is an error naming the first key that differs.
    """
    found = {}
    variant_name(variant) if variant else None  # an unknown name fails before the file is read

    def check(shapes: dict[str, tuple[int, ...]]) -> None:
        shapes = _strip_prefix(shapes)
        if variant:
            found["config"] = variant_config(variant, task, n_segment, source=str(path))
        else:
            stand_ins = {key: SimpleNamespace(shape=shape) for key, shape in shapes.items()}
            found["config"] = infer_config(stand_ins, task or task_from_filename(path), n_segment,
                                           source=str(path))
        check_shapes(shapes, found["config"], source=str(path))

    state = _strip_prefix(load_state_dict(path, check=check))
    return found["config"], state_dict_to_variables(state, found["config"], source=str(path))
