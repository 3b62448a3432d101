"""The data contract between dataset readers, the synthetic generator, preprocessing and the TFDS builder.

A `Recording` is one raw video with its per-frame labels, before any preprocessing. Readers of real
datasets (`bigsmall_jax.datasets.readers`) and the synthetic generator (`bigsmall_jax.synthetic`) both produce
them; `bigsmall_jax.datasets.preprocess.preprocess_recording` turns one into model-ready clips.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# The 12 action units of the paper (BP4D+ AU subset), in the order of the model's AU outputs.
AU_NAMES: tuple[str, ...] = (
    "AU01", "AU02", "AU04", "AU06", "AU07", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24",
)
# BCE pos_weight per AU used by the paper for BP4D+ (negatives / positives in training data).
BP4D_AU_POS_WEIGHT: tuple[float, ...] = (
    9.64, 11.74, 16.77, 1.05, 0.53, 0.56, 0.75, 0.69, 8.51, 6.94, 5.03, 25.0,
)


@dataclasses.dataclass
class Recording:
    """One video and its labels, all per frame, before preprocessing.

    Attributes:
      name: unique id of the video within its dataset, e.g. ``"F001_T1"``.
      subject: subject id; splits are by subject.
      frames: (T, H, W, 3) uint8 RGB.
      fps: frames per second (Hz).
      bvp: (T,) float pulse wave (PPG, or blood pressure for BP4D+), arbitrary units, or None.
      resp: (T,) float respiration wave, arbitrary units, or None.
      au: (T, 12) float32 in {0, 1} in `AU_NAMES` order, NaN where a label is missing, or None.
      hr_bpm: (T,) heart rate in beats/min when the dataset gives it, else None.
      rr_bpm: (T,) respiration rate in breaths/min when the dataset gives it, else None.
      source: the file the recording was read from, for error messages.
      face_box: optional (x, y, w, h) face box in pixels known without detection (synthetic data).
      extra: further per-frame waves a dataset provides, by name (e.g. BP4D+ ``pos_env_norm_bvp``,
        the POS pseudo-PPG the paper trains the pulse head on), each (T,).
    """

    name: str
    subject: str
    frames: np.ndarray
    fps: float
    bvp: np.ndarray | None = None
    resp: np.ndarray | None = None
    au: np.ndarray | None = None
    hr_bpm: np.ndarray | None = None
    rr_bpm: np.ndarray | None = None
    source: str = ""
    face_box: tuple[int, int, int, int] | None = None
    extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])
