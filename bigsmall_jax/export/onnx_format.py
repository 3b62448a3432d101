"""ONNX export with jax2onnx, and loading an export into ONNX Runtime.

jax2onnx converts the traced JAX program (its jaxpr) op by op into ONNX; the parameters become the graph's
initializers. Two fixes are made to its output here:

* jax2onnx 0.17 annotates some intermediate values with the wrong element type (Concat outputs of the
  temporal shift marked as double in a float graph), which ONNX Runtime refuses; the intermediate type
  annotations are dropped and recomputed by ONNX shape inference (the graph itself is right).
* jax2onnx names a dynamic axis only where an input axis is a plain symbol, and the model needs the
  frame count as a multiple of T to split it into clips. A dynamic export therefore traces the model on
  (N, T, ...) clip inputs and puts one Reshape in front: the file takes (frames, ...) like the model.

An op that jax2onnx cannot convert is a `UserError` naming the op; the file is written only once the
graph is complete and checked (`onnx.checker`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from bigsmall_jax import files
from bigsmall_jax.errors import UserError, file_error
from bigsmall_jax.export.signature import EXPORT_DTYPES, FRAMES_DIM, Signature

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'bigsmall-jax[export]'"


def optional_module(name: str):
    """Imports one of the optional ONNX packages (jax2onnx, onnx, onnxruntime: the `export` extra).

    Raises:
      UserError: the package is not installed (one line saying how to install it).
    """
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise UserError(f"{name} is not installed: ONNX export and the ONNX runtime need the export extra "
                        f"({INSTALL_HINT})") from None

OPSET = 21  # supported by ONNX Runtime >= 1.20


def _jax2onnx():
    """jax2onnx's converter, its version, and the onnx module (imported on first use; its plugin registry
    logs a warning for every optional framework it finds missing, and its IR library one for every
    intermediate value it leaves untyped (`_finish` types them): both kept quiet)."""
    for name in ("jax2onnx", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from importlib.metadata import version

    onnx = optional_module("onnx")
    to_onnx = optional_module("jax2onnx").to_onnx
    return to_onnx, version("jax2onnx"), onnx


def _unsupported(e: Exception, output: Path) -> UserError:
    """The one-line error of an op jax2onnx cannot convert."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    m = re.search(r"primitive '([^']+)'", text)
    what = f"the JAX op '{m.group(1)}' has no ONNX conversion in jax2onnx" if m else f"unsupported op: {text}"
    return file_error(output, f"cannot export to ONNX: {what}")


def _clip_inputs(forward: Callable, sig: Signature) -> tuple[Callable, list]:
    """The function jax2onnx traces and its input specs: (frames, ...) inputs for a fixed batch; for a
    dynamic one (N, T, ...) clips reshaped to (N*T, ...) frames inside."""
    dtype = EXPORT_DTYPES[sig.dtype]
    names = sig.output_names
    if sig.batch_clips is not None:
        specs = [jax.ShapeDtypeStruct(s.shape, dtype) for s in sig.inputs]
        return (lambda big, small: tuple(forward(big, small)[k] for k in names)), specs

    t = sig.n_segment

    def per_clip(big, small):
        frames = lambda x: x.reshape((x.shape[0] * t, *x.shape[2:]))
        out = forward(frames(big), frames(small))
        return tuple(out[k] for k in names)

    return per_clip, [("N", t, *s.shape[1:]) for s in sig.inputs]


def _frames_inputs(model, sig: Signature) -> None:
    """Gives a dynamic export (N, T, ...) -> (frames, ...) inputs: each input is renamed ``<name>_clips``
    and fed by a Reshape to (-1, T, ...) of a new float32 (frames, ...) input of the old name."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    new_inputs, reshapes = [], []
    for spec, value in zip(sig.inputs, list(graph.input), strict=True):
        clips = f"{spec.name}_clips"
        for node in graph.node:
            node.input[:] = [clips if i == value.name else i for i in node.input]
        shape = numpy_helper.from_array(np.asarray([-1, sig.n_segment, *spec.shape[1:]], np.int64),
                                        f"{spec.name}_clip_shape")
        graph.initializer.append(shape)
        reshapes.append(helper.make_node("Reshape", [spec.name, shape.name], [clips], name=f"{spec.name}_to_clips"))
        new_inputs.append(helper.make_tensor_value_info(spec.name, TensorProto.FLOAT, [FRAMES_DIM, *spec.shape[1:]]))
    del graph.input[:]
    graph.input.extend(new_inputs)
    nodes = reshapes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def _to_float16(model, sig: Signature) -> None:
    """Turns a float32 graph into a float16 one: initializers, constants, casts and inputs in float16, the
    outputs cast back to float32 at the end (jax2onnx's own float16 path folds some constants in float32,
    which the ONNX type checker refuses)."""
    from onnx import AttributeProto, TensorProto, helper, numpy_helper

    to16 = lambda t: numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name)
    graph = model.graph
    for t in graph.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(to16(t))
    for node in graph.node:
        for a in node.attribute:
            if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
            elif a.type == AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(to16(a.t))
    for value in graph.input:
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    for spec, value in zip(sig.outputs, graph.output, strict=True):
        inner = f"{spec.name}_float16"
        for node in graph.node:
            node.output[:] = [inner if o == value.name else o for o in node.output]
        graph.node.append(helper.make_node("Cast", [inner], [value.name], to=TensorProto.FLOAT,
                                           name=f"{spec.name}_to_float32"))


def _finish(model, sig: Signature, onnx):
    """Dynamic output axes named, recomputed intermediate types, metadata; checked."""
    graph = model.graph
    for spec, value in zip(sig.outputs, graph.output, strict=True):
        dim0 = value.type.tensor_type.shape.dim[0]
        if sig.batch_clips is None:
            dim0.dim_param = FRAMES_DIM
        elif dim0.dim_value != spec.shape[0]:
            raise UserError(f"ONNX output {spec.name} has first axis {dim0}, expected {spec.shape[0]}")
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    del model.metadata_props[:]
    for k, v in sig.metadata().items():
        model.metadata_props.add(key=k, value=v)
    model.doc_string = ("BigSmall eval-mode forward (bigsmall_jax): inputs "
                        + ", ".join(f"{t.name} {list(t.shape)} {t.dtype}" for t in sig.inputs) + "; outputs "
                        + ", ".join(f"{t.name} {list(t.shape)} {t.dtype}" for t in sig.outputs)
                        + f"; {sig.n_segment} consecutive frames per clip")
    onnx.checker.check_model(model, full_check=True)
    return model


def to_onnx_model(forward: Callable, sig: Signature):
    """The ONNX ModelProto of `forward` (the float32 `bigsmall_jax.export.signature.eval_forward`) with
    `sig`'s names, shapes and metadata; a float16 `sig` converts the float32 graph (`_to_float16`).

    Raises:
      NotImplementedError (and what jax2onnx raises) when an op cannot be converted; `write_onnx` turns it
      into a `UserError`.
    """
    to_onnx, version, onnx = _jax2onnx()
    fn, specs = _clip_inputs(forward, dataclasses.replace(sig, dtype="float32"))
    with warnings.catch_warnings():
        # jax2onnx traces with 64-bit types enabled; jnp.mean then asks for a float64 count in a float32 graph
        warnings.filterwarnings("ignore", "Explicitly requested dtype float64", UserWarning)
        model = to_onnx(fn, specs, model_name="bigsmall", opset=OPSET, input_names=[s.name for s in sig.inputs],
                        output_names=list(sig.output_names))
    if sig.batch_clips is None:
        _frames_inputs(model, sig)
    if sig.dtype == "float16":
        _to_float16(model, sig)
    model.producer_name, model.producer_version = "bigsmall_jax (jax2onnx)", version
    return _finish(model, sig, onnx)


def write_onnx(forward: Callable, sig: Signature, output: str | os.PathLike) -> Path:
    """Converts and writes the ONNX file atomically (nothing is left at `output` on failure).

    Raises:
      UserError: an op jax2onnx has no conversion for (naming it), or a graph ONNX's checker refuses.
    """
    output = Path(output)
    try:
        model = to_onnx_model(forward, sig)
    except NotImplementedError as e:
        raise _unsupported(e, output) from e
    data = model.SerializeToString()
    with files.atomic_path(output, ".onnx") as tmp:
        tmp.write_bytes(data)
    log.info("wrote %s (%.2f MB, opset %d)", output, len(data) / 1e6, OPSET)
    return output


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An ONNX Runtime CPU session of an exported file and its `Signature` (from the file's metadata).

    Args:
      threads: intra-op threads (None: ONNX Runtime's default, every core).
    Raises:
      UserError: the file is missing, not ONNX, or not a bigsmall_jax export.
    """
    ort = optional_module("onnxruntime")
    path = Path(path)
    if not path.is_file():
        raise file_error(path, "no such ONNX file")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ONNX Runtime raises its own Fail/InvalidGraph/... types
        raise file_error(path, f"ONNX Runtime cannot load it: {str(e).strip().splitlines()[0]}") from None
    meta = session.get_modelmeta().custom_metadata_map
    return session, Signature.from_metadata(meta, os.fspath(path))
