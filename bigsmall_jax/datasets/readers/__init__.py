"""Dataset readers: raw videos and labels of each supported dataset as `Recording`s.

One module per dataset (`bp4d_plus`, `ubfc_rppg`, `pure`, `generic`), each with its layout in its
docstring and its `common.Reader` as ``READER``: ``iter_recordings(root, subjects=None, ...)`` and
``list_subjects(root)`` (BP4D+ also ``list_trials`` / ``read_trial``). `bp4d_release` reads the BP4D+
release as the published BigSmall loader does. `bigsmall_jax.datasets.registry` looks datasets up by name.
"""

from bigsmall_jax.datasets.readers.bp4d_plus import (
                                                     BP4D_FPS,
                                                     SPLITS_DIR,
                                                     bp4d_fold_subjects,
                                                     bp4d_plus_recordings,
                                                     bp4d_plus_subjects,
                                                     bp4d_plus_trials,
                                                     read_bp4d_plus_mat,
                                                     read_bp4d_plus_trial,
)
from bigsmall_jax.datasets.readers.common import Reader, au_codes_to_labels, frames_to_u8, per_frame, resample_to_frames
from bigsmall_jax.datasets.readers.generic import generic_labels, generic_recordings, generic_subjects, read_label_csv
from bigsmall_jax.datasets.readers.pure import pure_recordings, pure_subjects
from bigsmall_jax.datasets.readers.ubfc_rppg import read_ubfc_ground_truth, ubfc_rppg_recordings, ubfc_rppg_subjects

__all__ = [
    "BP4D_FPS", "SPLITS_DIR", "Reader", "au_codes_to_labels", "bp4d_fold_subjects", "bp4d_plus_recordings",
    "bp4d_plus_subjects", "bp4d_plus_trials", "frames_to_u8", "generic_labels", "generic_recordings",
    "generic_subjects", "per_frame", "pure_recordings", "pure_subjects", "read_bp4d_plus_mat",
    "read_bp4d_plus_trial", "read_label_csv", "read_ubfc_ground_truth", "resample_to_frames",
    "ubfc_rppg_recordings", "ubfc_rppg_subjects",
]
