"""Face detectors: both find a drawn face around its centre, none on a blank frame; unknown names are refused."""

import importlib.util

import numpy as np
import pytest
from face_drawing import draw_face

from bigsmall_jax.errors import UserError
from bigsmall_jax.inference.detectors import make_detector

DETECTORS = ["haar", pytest.param("hog", marks=pytest.mark.skipif(importlib.util.find_spec("dlib") is None,
                                                                   reason="dlib (the [detect] extra) not installed"))]


@pytest.mark.parametrize("name", DETECTORS)
def test_finds_the_face_and_nothing_else(name):
    detect = make_detector(name)
    x, y, w, h = detect(draw_face(240, 320, 150, 110, 50))
    assert x < 150 < x + w and y < 110 < y + h and 60 < w < 140
    assert detect(np.full((240, 320, 3), 100, np.uint8)) is None


def test_unknown_detector():
    with pytest.raises(UserError, match="unknown face detector 'yolo'; valid: haar, hog"):
        make_detector("yolo")
