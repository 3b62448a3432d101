"""What runs the model on batches of frames during inference: JAX (the checkpoint, jitted) or ONNX Runtime
(a file exported with ``python -m bigsmall_jax.export --format onnx``).

A runner has ``config`` (the `ModelConfig`: ``n_segment``, input sizes, heads) and is called as
``runner(variables, big, small)`` with (N*T, 144, 144, 3) and (N*T, 9, 9, 3) float32 frames, returning
``{head: (N*T, k) float32}``: the ``forward`` that `bigsmall_jax.evaluation.evaluate.predict_frames` takes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bigsmall_jax.errors import UserError, file_error
from bigsmall_jax.model import ModelConfig

RUNTIMES: tuple[str, ...] = ("jax", "onnx")


class OnnxRunner:
    """An exported ONNX file run by ONNX Runtime on the CPU.

    A file exported for a fixed number of clips gets batches of any size: split into its batch, the last
    piece padded with zero frames (clips are independent in eval mode) and those outputs dropped.

    Args:
      path: the ``.onnx`` file.
      threads: ONNX Runtime intra-op threads (None: its default, every core).
    Raises:
      UserError: the file is missing, not loadable, or not a bigsmall_jax export.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        from bigsmall_jax.export.onnx_format import onnx_session

        self.path = Path(path)
        self.session, self.signature = onnx_session(self.path, threads)
        if not self.signature.model_config:
            raise file_error(self.path, "its metadata has no model config; export it with python -m "
                                        "bigsmall_jax.export")
        self.config = ModelConfig.from_dict(self.signature.model_config, os.fspath(self.path))
        self._dtype = np.float16 if self.signature.dtype == "float16" else np.float32
        self._names = [o.name for o in self.session.get_outputs()]
        batch = self.signature.batch_clips
        self._frames = None if batch is None else batch * self.signature.n_segment

    def _run(self, big: np.ndarray, small: np.ndarray) -> dict[str, np.ndarray]:
        feed = {"big": np.asarray(big, self._dtype), "small": np.asarray(small, self._dtype)}
        return dict(zip(self._names, self.session.run(self._names, feed), strict=True))

    def __call__(self, variables, big, small) -> dict[str, np.ndarray]:
        """Outputs for (M, ...) frames (`variables` unused: the weights are in the file)."""
        del variables
        big, small = np.asarray(big), np.asarray(small)
        m = big.shape[0]
        if self._frames is None or m == self._frames:
            return self._run(big, small)
        step, pieces = self._frames, []
        for start in range(0, m, step):
            b, s = big[start:start + step], small[start:start + step]
            fill = step - b.shape[0]
            if fill:
                b = np.concatenate([b, np.zeros((fill, *b.shape[1:]), b.dtype)])
                s = np.concatenate([s, np.zeros((fill, *s.shape[1:]), s.dtype)])
            pieces.append(self._run(b, s))
        return {k: np.concatenate([p[k] for p in pieces])[:m] for k in self._names}


def check_runtime(runtime: str, checkpoint: str | os.PathLike) -> None:
    """Raises `UserError` for an unknown runtime, or a checkpoint that does not suit it (``onnx`` needs an
    ``.onnx`` file, ``jax`` anything but)."""
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    is_onnx = Path(checkpoint).suffix.lower() == ".onnx"
    if runtime == "onnx" and not is_onnx:
        raise file_error(checkpoint, "--runtime onnx needs an .onnx file exported with python -m bigsmall_jax.export")
    if runtime == "jax" and is_onnx:
        raise file_error(checkpoint, "is an ONNX file; run it with --runtime onnx")
