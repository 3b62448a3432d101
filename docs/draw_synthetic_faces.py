"""Draws docs/synthetic_faces.png: the same synthetic subjects in the classic and the physical style.

Run from the repository root: ``python docs/draw_synthetic_faces.py``.
"""

import dataclasses

import numpy as np

from bigsmall_jax.synthetic import SyntheticConfig, generate_recording
from bigsmall_jax.synthetic.plots import save_style_sheet


def main():
    base = SyntheticConfig(duration_s=4.0, n_subjects=6)
    rows = []
    for s in range(6):
        old = generate_recording(s, 0, base)
        new = generate_recording(s, 0, dataclasses.replace(base, style="physical"))
        pick = lambda rec, k: [rec.frames[i] for i in np.linspace(0, rec.num_frames - 1, k).round().astype(int)]  # noqa: E731
        rows.append((f"S{s:02d}", pick(old, 2), pick(new, 2)))
    save_style_sheet(rows, "docs/synthetic_faces.png")


if __name__ == "__main__":
    main()
