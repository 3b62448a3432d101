"""Synthetic face videos with known pulse, respiration and action units: the embedded default dataset.

The real BP4D+ dataset is licensed, so the default training run learns from these. Each subject has a
fixed appearance (`SubjectParams`: skin tone, face shape, feature positions, hair, clothes, background);
each video draws its own nuisances (`VideoParams`: face size and position, light, sensor noise, head
motion) and its own signals (`waveforms`). Everything is deterministic by (seed, subject, video).

Modules, in the order a video is made:

- `config`: `SyntheticConfig`, `SubjectParams`, `VideoParams`, face units, ids and random streams.
- `appearance`: `subject_params` and `video_params` drawn from seeds.
- `waveforms`: pulse, respiration, AU episodes, blinks and slow noise.
- `drawing`: face coordinates, soft shapes, textures and the painter's canvas.
- `scene`: `build_scene` draws the canonical subject and precomputes the per-video delta images
  (colour changes: AUs, pulse, blink) and displacement fields (AUs, respiration, head motion).
- `aus`: one drawing function per action unit.
- `render`: `render_frames` warps, composites, lights, adds noise, rounds (and optionally JPEG-compresses).
- `recordings`: `generate_recording`, `iter_recordings`, `subject_splits`.
- `export`: a recording's mp4 + CSV files; `plots`: contact sheet and label plot.
- `dataset`: `write_dataset` writes a whole dataset folder; `cli`: the command line
  ``python -m bigsmall_jax.synthetic --out DIR`` (both import matplotlib, so this package does not
  import them).

``SyntheticConfig(style="physical")`` swaps the look for `physical` (3D-lit faces, pulse in a skin
reflectance model with heart-rate variability, realistic nuisances), built from `skin` (melanin and
blood optics), `head` (depth map, normals, cluttered background) and the classic drawing steps;
`realism` measures how real its pulse looks to POS and to the published BP4D+ models.

Learnability: the AU cues are deliberately exaggerated (brows move 4-7 px, wrinkles 2-3 px wide at
160 px; `SyntheticConfig.au_strength` scales them), because the default CPU run sees only ~8,000 Big
frames. Measured on the default dataset, held-out subjects (8 train / 4 held out): a linear ridge model
on the 9x9 Small frames recovers HR and RR exactly per 20 s video, and a 6-conv CNN on 72x72 Big frames
(batch 16, Adam 1e-3) reaches mean AU F1 0.68 after 3 epochs and 0.70 after 4. Train with
`bigsmall_jax.synthetic.waveforms.AU_POS_WEIGHT` (this data's label rates), not the BP4D+ pos_weight.
"""

from bigsmall_jax.synthetic.appearance import subject_params, video_params
from bigsmall_jax.synthetic.aus import AU_REGIONS
from bigsmall_jax.synthetic.config import (
    N_DELTAS,
    N_FLOWS,
    REFERENCE_SIZE,
    SubjectParams,
    SyntheticConfig,
    VideoParams,
    recording_name,
    subject_id,
)
from bigsmall_jax.synthetic.export import CSV_COLUMNS, label_table, write_files
from bigsmall_jax.synthetic.recordings import (
    Signals,
    frame_weights,
    generate_recording,
    iter_recordings,
    subject_splits,
    video_signals,
)
from bigsmall_jax.synthetic.render import gaussian_noise, render_frames
from bigsmall_jax.synthetic.scene import RPPG_RGB, Scene, build_scene

__all__ = [
    "AU_REGIONS", "CSV_COLUMNS", "N_DELTAS", "N_FLOWS", "REFERENCE_SIZE", "RPPG_RGB", "Scene", "Signals",
    "SubjectParams", "SyntheticConfig", "VideoParams", "build_scene", "frame_weights", "gaussian_noise",
    "generate_recording", "iter_recordings", "label_table", "recording_name", "render_frames", "subject_id",
    "subject_params", "subject_splits", "video_params", "video_signals", "write_files",
]
