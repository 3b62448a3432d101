"""Figures: the project's one place that sets up matplotlib and writes PNGs.

Every figure is its own `matplotlib.figure.Figure` on the Agg canvas (no pyplot, no global state, no
display needed), and `save_png` writes it atomically (`bigsmall_jax.files.atomic_path`).
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bigsmall_jax.files import atomic_path

DPI = 120


def new_figure(width: float, height: float, dpi: int = DPI) -> Figure:
    """An empty figure of `width` x `height` inches with constrained layout, drawn by Agg."""
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path_png: str | os.PathLike) -> Path:
    """Writes `fig` to `path_png` atomically; returns the path.

    Raises:
      UserError: the folder to write into does not exist.
    """
    with atomic_path(path_png, suffix=".png") as tmp, tmp.open("wb") as f:
        fig.savefig(f, format="png")
    return Path(path_png)
