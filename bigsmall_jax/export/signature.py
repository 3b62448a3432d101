"""What an exported model takes and gives: the eval-mode forward of a checkpoint as a pure function of its
inputs, with the names, shapes and dtypes that both export formats write into their files.

Inputs are the model's own: ``big`` (N*T, 144, 144, 3) standardized frames and ``small`` (N*T, 9, 9, 3)
diff-normalized frames, N clips of T = ``n_segment`` consecutive frames flattened into the first axis.
Outputs are the heads the model has, in its order (``au`` (N*T, n_au) logits, ``bvp`` (N*T, 1), ``resp``
(N*T, 1)), always float32. N is fixed (``batch_clips``) or left to the caller (``None``, "dynamic").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from bigsmall_jax.errors import UserError

EXPORT_DTYPES: dict[str, Any] = {"float32": jnp.float32, "float16": jnp.float16}
INPUT_NAMES: tuple[str, str] = ("big", "small")
FRAMES_DIM = "frames"  # the name of a dynamic first axis (N*T frames) in the files' metadata
METADATA_PREFIX = "bigsmall."


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, shape (ints; `FRAMES_DIM` for a dynamic first axis) and dtype name."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclasses.dataclass(frozen=True)
class Signature:
    """The interface of an exported model.

    Attributes:
      n_segment: T, frames per clip; the first axis of every input and output is N*T. The model's
        ``n_segment``, or 1 for a model whose frames never interact (the single-task pathways: no shift,
        Big on every frame), which then takes any number of frames.
      batch_clips: N, or None when the exported file takes any whole number of clips.
      dtype: "float32" or "float16": the dtype of the inputs, the weights and the computation.
      inputs, outputs: `TensorSpec` of each, in the file's order.
      model_config: the model's configuration as JSON values ({} when the model has none).
      source: what was exported (the checkpoint given on the command line).
    """

    n_segment: int
    batch_clips: int | None
    dtype: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    model_config: dict[str, Any]
    source: str = ""

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def metadata(self) -> dict[str, str]:
        """String key/values for a file's metadata (ONNX ``metadata_props``), keys prefixed ``bigsmall.``."""
        values = {"n_segment": self.n_segment, "batch_clips": self.batch_clips or "dynamic", "dtype": self.dtype,
                  "inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs],
                  "model_config": self.model_config, "source": self.source}
        return {METADATA_PREFIX + k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], source: str = "exported model") -> Signature:
        """Reads back what `metadata` wrote; raises `UserError` naming `source` when keys are missing or bad."""
        try:
            get = lambda k: props[METADATA_PREFIX + k]
            batch = get("batch_clips")
            tensors = lambda k: tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in json.loads(get(k)))
            return cls(n_segment=int(get("n_segment")), batch_clips=None if batch == "dynamic" else int(batch),
                       dtype=get("dtype"), inputs=tensors("inputs"), outputs=tensors("outputs"),
                       model_config=json.loads(get("model_config")), source=get("source"))
        except (KeyError, ValueError, TypeError) as e:
            raise UserError(f"{source}: not a bigsmall_jax export (metadata {e} missing or unreadable); "
                            "export it with python -m bigsmall_jax.export") from None


def check_batch_clips(value: str | int | None) -> int | None:
    """``"dynamic"`` / None -> None, else a positive int; `UserError` otherwise."""
    if value is None or value == "dynamic":
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise UserError(f"--batch-clips must be a positive number of clips or 'dynamic', got {value!r}")
    return n


def check_dtype(dtype: str) -> str:
    if dtype not in EXPORT_DTYPES:
        raise UserError(f"unknown --dtype {dtype!r}; valid: {', '.join(EXPORT_DTYPES)}")
    return dtype


def _cast_model(model, variables, dtype: str):
    """(model, variables) computing in `dtype`: the same model with ``config.dtype`` replaced and its floating
    parameters cast (float16 export); unchanged for float32."""
    if dtype == "float32":
        return model, variables
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config) or not hasattr(config, "dtype"):
        raise UserError(f"a {dtype} export needs a model with a config.dtype; {type(model).__name__} has none")
    model = model.clone(config=dataclasses.replace(config, dtype=dtype))
    cast = lambda x: x.astype(EXPORT_DTYPES[dtype]) if jnp.issubdtype(x.dtype, jnp.floating) else x
    return model, jax.tree_util.tree_map(cast, variables)


def eval_forward(model, variables, dtype: str = "float32") -> Callable[[jax.Array, jax.Array], dict[str, jax.Array]]:
    """The evaluation-mode forward pass ``(big, small) -> {head: (N*T, k) float32}`` with the variables bound.

    Works for any model with ``model.apply(variables, big, small, train=False)`` returning a dict of arrays
    (what `bigsmall_jax.checkpoints.load.load_checkpoint` returns). With ``dtype="float16"`` the weights,
    inputs and computation are float16; the outputs stay float32.
    """
    model, variables = _cast_model(model, variables, check_dtype(dtype))

    def forward(big: jax.Array, small: jax.Array) -> dict[str, jax.Array]:
        out = model.apply(variables, big, small, train=False)
        return {k: v.astype(jnp.float32) for k, v in out.items()}

    return forward


def model_signature(model, variables, batch_clips: int | None, dtype: str = "float32",
                    source: str = "") -> Signature:
    """The `Signature` of exporting `model` (`batch_clips` None: dynamic): outputs (names and sizes) from an
    abstract evaluation of the forward pass on one clip, no computation."""
    config = model.config
    t = int(config.n_segment) if getattr(model, "uses_segments", True) else 1
    n = FRAMES_DIM if batch_clips is None else batch_clips * t
    dt = check_dtype(dtype)
    inputs = (TensorSpec("big", (n, config.big_size, config.big_size, 3), dt),
              TensorSpec("small", (n, config.small_size, config.small_size, 3), dt))
    shapes = jax.eval_shape(eval_forward(model, variables, dtype),
                            *(jax.ShapeDtypeStruct((t, *s.shape[1:]), EXPORT_DTYPES[dt]) for s in inputs))
    outputs = tuple(TensorSpec(k, (n, *v.shape[1:]), "float32") for k, v in shapes.items())
    to_dict = getattr(config, "to_dict", None)
    return Signature(n_segment=t, batch_clips=batch_clips, dtype=dt, inputs=inputs, outputs=outputs,
                     model_config=to_dict() if to_dict else {}, source=source)
