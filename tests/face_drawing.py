"""A cartoon face that OpenCV's frontal-face Haar cascade detects, for face-crop tests (no real faces)."""

from __future__ import annotations

import cv2
import numpy as np


def draw_face(height: int = 240, width: int = 320, cx: int = 160, cy: int = 120, s: int = 60,
              background=(70, 90, 110)) -> np.ndarray:
    """(height, width, 3) uint8 RGB: a skin-coloured ellipse of half-height `s` centred at (cx, cy) with
    eyebrows, eyes, nose and mouth; the cascade finds a box of side about 2.2 * s around (cx, cy)."""
    img = np.full((height, width, 3), background, np.uint8)
    cv2.ellipse(img, (cx, cy), (int(s * 0.8), s), 0, 0, 360, (200, 160, 140), -1)
    for dx in (-1, 1):
        cv2.line(img, (cx + dx * int(s * 0.15), cy - int(s * 0.38)), (cx + dx * int(s * 0.55), cy - int(s * 0.40)),
                 (60, 40, 30), max(2, s // 12))
        cv2.ellipse(img, (cx + dx * int(s * 0.33), cy - int(s * 0.2)), (int(s * 0.16), int(s * 0.08)), 0, 0, 360,
                    (40, 30, 30), -1)
    cv2.line(img, (cx, cy - int(s * 0.1)), (cx, cy + int(s * 0.25)), (150, 110, 100), max(2, s // 15))
    cv2.ellipse(img, (cx, cy + int(s * 0.5)), (int(s * 0.3), int(s * 0.08)), 0, 0, 360, (120, 50, 50), -1)
    return cv2.GaussianBlur(img, (5, 5), 0)
