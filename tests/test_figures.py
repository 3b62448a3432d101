"""bigsmall_jax.figures: figures without pyplot, written as complete PNGs."""

from __future__ import annotations

import imageio.v3 as iio
import pytest

from bigsmall_jax import figures
from bigsmall_jax.errors import UserError


def test_new_figure_saves_a_png_of_its_size(tmp_path):
    fig = figures.new_figure(3.0, 2.0, dpi=50)
    fig.add_subplot().plot([0, 1], [1, 0])
    path = figures.save_png(fig, tmp_path / "f.png")
    assert iio.imread(path).shape[:2] == (100, 150)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_save_png_names_a_missing_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        figures.save_png(figures.new_figure(1, 1), tmp_path / "missing" / "f.png")
