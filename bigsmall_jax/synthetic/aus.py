"""The action units' look: one small function per AU draws its colour change and its displacement field.

Shapes move by displacement fields (brows, lids, cheeks, lip corners, chin, lips); wrinkles, furrows,
dimples, highlights and teeth are colour changes. Magnitudes are exaggerated relative to real faces
(4-8 pixels of motion and wrinkles 2-3 pixels wide at 160 px) so that a small CNN learns every AU from
a few thousand frames at 144 x 144; `SyntheticConfig.au_strength` scales all of them. Positions are in
face units (u across, v down; see `bigsmall_jax.synthetic.config`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.synthetic.config import SubjectParams
from bigsmall_jax.synthetic.drawing import FaceGrid, both, line, window

# Coarse anatomical region of each AU in face units: (|u| min, |u| max, v min, v max). Each AU's pixel
# changes lie inside (used by the tests and documentation; the drawing uses the subject's own feature
# positions, which lie well inside these).
AU_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "AU01": (0.0, 0.5, -0.95, -0.05),
    "AU02": (0.2, 0.95, -0.95, -0.05),
    "AU04": (0.0, 0.75, -0.7, 0.05),
    "AU06": (0.05, 0.95, -0.35, 0.5),
    "AU07": (0.05, 0.75, -0.45, 0.15),
    "AU10": (0.0, 0.65, 0.0, 0.7),
    "AU12": (0.0, 0.8, 0.05, 0.85),
    "AU14": (0.0, 0.85, 0.15, 0.85),
    "AU15": (0.0, 0.7, 0.3, 0.95),
    "AU17": (0.0, 0.55, 0.4, 1.1),
    "AU23": (0.0, 0.6, 0.3, 0.8),
    "AU24": (0.0, 0.6, 0.3, 0.8),
}


@dataclasses.dataclass(frozen=True)
class AuInputs:
    """What the AU drawers read: the grid, the subject, and parts of the drawn canonical face.

    Attributes:
      grid: the video's `FaceGrid`. subject: its `SubjectParams`.
      base: (S, S, 3) premultiplied colour of the canonical subject (grey levels).
      skin_rgb: (S, S, 3) colour of bare skin at every pixel (for lips turning pale).
      shading: (S, S) Lambert shading of the face in [0, 1].
      lips: (S, S) coverage of the lips. mouth_v: (S, S) v of the mouth line at every column.
    """

    grid: FaceGrid
    subject: SubjectParams
    base: np.ndarray
    skin_rgb: np.ndarray
    shading: np.ndarray
    lips: np.ndarray
    mouth_v: np.ndarray

    @property
    def teeth_rgb(self) -> np.ndarray:
        """(S, S, 3) shaded colour of teeth."""
        return np.array([232.0, 228.0, 215.0]) * self.shading[..., None]


class AuLayer:
    """One AU's change at full intensity, accumulated in place.

    Attributes:
      delta: (S, S, 3) colour change in grey levels (a view into `Scene.deltas`).
      flow: (S, S, 2) content displacement (dx, dy) in pixels (a view into `Scene.flows`).
      relief: None, or (S, S) where `shade` accumulates its relative change instead of colouring `delta`
        (the physical renderer turns it into relief and cavity shading under its lights).
    """

    def __init__(self, delta: np.ndarray, flow: np.ndarray, inputs: AuInputs, strength: float,
                 relief: np.ndarray | None = None):
        self.delta, self.flow, self.relief = delta, flow, relief
        self.base, self.a, self.b = inputs.base, inputs.grid.a, inputs.grid.b
        self.strength = strength

    def shade(self, rel: np.ndarray) -> None:
        """Relative brightness change `rel` (S, S) of whatever is drawn there (at most -90%)."""
        if self.relief is not None:
            self.relief += np.maximum(self.strength * rel, -0.9)
        else:
            self.delta += self.base * np.maximum(self.strength * rel, -0.9)[..., None]

    def recolour(self, target_rgb: np.ndarray, mask: np.ndarray) -> None:
        """Blends towards `target_rgb` ((S, S, 3) or RGB) by `mask` (S, S) in [0, 1]."""
        self.delta += (target_rgb - self.base) * np.clip(self.strength * mask, 0.0, 1.0)[..., None]

    def move(self, du, dv) -> None:
        """Displaces the content by (du, dv) face units (scalars or (S, S))."""
        self.flow[..., 0] += self.strength * du * self.a
        self.flow[..., 1] += self.strength * dv * self.b


def _forehead_wrinkles(v: np.ndarray, brow_y: float, bend: np.ndarray | float = 0.0) -> np.ndarray:
    """Three horizontal wrinkle lines above the brows (`bend`: their v offset, e.g. arched upwards)."""
    return sum(line(v - (brow_y - 0.17 - 0.09 * k + bend), 0.022) for k in range(3))


def au01(x: AuInputs, out: AuLayer) -> None:
    """AU01 inner brow raiser: inner brows up (oblique brows), central forehead wrinkles."""
    g, sp = x.grid.gauss, x.subject
    inner = both(lambda s: g(s * (sp.brow_inner + 0.1), sp.brow_y, 0.13, 0.15))
    out.move(0.0, -0.14 * inner)
    out.shade(-0.4 * _forehead_wrinkles(x.grid.v, sp.brow_y) * g(0.0, sp.brow_y - 0.25, 0.2, 0.2))


def au02(x: AuInputs, out: AuLayer) -> None:
    """AU02 outer brow raiser: outer brows up (arched, surprised), lateral forehead wrinkles."""
    g, sp, by = x.grid.gauss, x.subject, x.subject.brow_y
    outer = both(lambda s: g(s * (sp.brow_inner + 0.8 * sp.brow_len), by, 0.13, 0.15))
    out.move(0.0, -0.14 * outer)
    wr = _forehead_wrinkles(x.grid.v, by, 0.15 * (np.abs(x.grid.u) - 0.5) ** 2)
    out.shade(-0.45 * wr * both(lambda s: g(s * 0.55, by - 0.22, 0.15, 0.2)))


def au04(x: AuInputs, out: AuLayer) -> None:
    """AU04 brow lowerer: brows down and together, vertical furrows between them, shadowed lids."""
    g, sp, by = x.grid.gauss, x.subject, x.subject.brow_y
    for s in (-1.0, 1.0):
        w = g(s * (sp.brow_inner + 0.15), by, 0.2, 0.14)
        out.move(-s * 0.07 * w, 0.1 * w)
    furrows = both(lambda s: line(x.grid.u - s * 0.055, 0.02)) * g(0.0, by + 0.02, 1.0, 0.08)
    out.shade(-0.5 * furrows - 0.25 * both(lambda s: g(s * sp.eye_dx, sp.eye_y - 0.08, 0.15, 0.05))
              - 0.2 * g(0.0, by + 0.12, 0.07, 0.03))


def _crows_feet(x: AuInputs) -> np.ndarray:
    """Three fanning lines beside the outer eye corners (face units, peak 1)."""
    u, v, sp = x.grid.u, x.grid.v, x.subject
    ua, ey = np.abs(u), sp.eye_y
    corner = sp.eye_dx + sp.eye_w
    return sum(both(lambda s, j=j: line(v - ey - 0.06 * j - 0.35 * j * (ua - corner), 0.02)
                    * window(ua, corner + 0.03, corner + 0.17) * (u * s > 0)) for j in (-1, 0, 1))


def au06(x: AuInputs, out: AuLayer) -> None:
    """AU06 cheek raiser: cheeks and lower lids up, bright cheek bulge, crow's feet, infraorbital furrow."""
    g, sp = x.grid.gauss, x.subject
    ey, ex = sp.eye_y, sp.eye_dx
    out.move(0.0, -0.09 * both(lambda s: g(s * (ex + 0.04), ey + 0.26, 0.18, 0.12)))
    out.shade(0.2 * both(lambda s: g(s * 0.42, ey + 0.33, 0.15, 0.09)) - 0.45 * _crows_feet(x)
              - 0.35 * both(lambda s: g(s * ex, ey + 1.1 * sp.eye_h + 0.08, 0.13, 0.022)))


def au07(x: AuInputs, out: AuLayer) -> None:
    """AU07 lid tightener: both lids close in towards the eye's centre line (narrowed eyes), tense lids."""
    g, sp, u, v = x.grid.gauss, x.subject, x.grid.u, x.grid.v
    ey, ex = sp.eye_y, sp.eye_dx
    for s in (-1.0, 1.0):  # flat inside, steep outside: the brows stay put
        w = np.exp(-(((v - ey) / (1.6 * sp.eye_h)) ** 4) - ((u - s * ex) / (1.25 * sp.eye_w)) ** 4)
        out.move(0.0, -0.65 * (v - ey) * w)
    out.shade(-0.4 * both(lambda s: g(s * ex, ey + 1.7 * sp.eye_h, 0.85 * sp.eye_w, 0.03))
              - 0.3 * both(lambda s: g(s * ex, ey - 1.9 * sp.eye_h, 0.95 * sp.eye_w, 0.04)))


def _nasolabial_folds(x: AuInputs) -> np.ndarray:
    """The nasolabial folds: lines from the nose wings down past the mouth corners (peak 1)."""
    sp, v = x.subject, x.grid.v
    top, bot = sp.nose_y, sp.mouth_y + 0.12
    tt = np.clip((v - top) / (bot - top), 0.0, 1.0)
    fold_u = sp.nose_w * 1.05 + (sp.mouth_w + 0.07 - sp.nose_w * 1.05) * tt**0.8
    return line(np.abs(x.grid.u) - fold_u, 0.03) * window(v, top, bot, 0.03)


def au10(x: AuInputs, out: AuLayer) -> None:
    """AU10 upper lip raiser: upper lip and nose wings up, deep nasolabial folds, upper teeth show."""
    g, sp = x.grid.gauss, x.subject
    my, mw = sp.mouth_y, sp.mouth_w
    out.move(0.0, -0.08 * g(0.0, my - 0.6 * sp.upper_lip, 0.7 * mw, 0.09) - 0.035 * g(0.0, sp.nose_y, 0.22, 0.06))
    out.shade(-0.45 * _nasolabial_folds(x) - 0.25 * g(0.0, sp.nose_y - 0.12, 0.12, 0.03))
    upper_teeth = (window(np.abs(x.grid.u), -1.0, 0.6 * mw, 0.05)
                   * window(x.grid.v - x.mouth_v, -0.45 * sp.upper_lip, 0.006, 0.01))
    out.recolour(x.teeth_rgb, upper_teeth)


def au12(x: AuInputs, out: AuLayer) -> None:
    """AU12 lip corner puller: corners out and up (smile), teeth, folds, raised cheek apples."""
    g, sp = x.grid.gauss, x.subject
    my, mw = sp.mouth_y, sp.mouth_w
    for s in (-1.0, 1.0):
        w = g(s * mw, my, 0.14, 0.12)
        out.move(s * 0.09 * w, -0.1 * w)
    out.shade(-0.3 * _nasolabial_folds(x) + 0.15 * both(lambda s: g(s * 0.38, my - 0.22, 0.13, 0.09)))
    smile_teeth = (window(np.abs(x.grid.u), -1.0, 0.75 * mw, 0.06)
                   * window(x.grid.v - x.mouth_v, -0.35 * sp.upper_lip, 0.35 * sp.lower_lip, 0.012))
    out.recolour(x.teeth_rgb, smile_teeth)


def au14(x: AuInputs, out: AuLayer) -> None:
    """AU14 dimpler: corners tucked in, deep dimples beside them."""
    g, my, mw = x.grid.gauss, x.subject.mouth_y, x.subject.mouth_w
    for s in (-1.0, 1.0):
        out.move(-s * 0.05 * g(s * mw, my, 0.08, 0.07), 0.0)
    out.shade(-0.6 * both(lambda s: g(s * (mw + 0.08), my - 0.01, 0.055, 0.07))
              - 0.15 * both(lambda s: g(s * (mw + 0.12), my - 0.1, 0.1, 0.12))
              + 0.25 * both(lambda s: g(s * (mw + 0.02), my - 0.09, 0.04, 0.045)))


def au15(x: AuInputs, out: AuLayer) -> None:
    """AU15 lip corner depressor: corners down, folds below them."""
    g, my, mw = x.grid.gauss, x.subject.mouth_y, x.subject.mouth_w
    for s in (-1.0, 1.0):
        out.move(-s * 0.015 * g(s * mw, my, 0.1, 0.1), 0.11 * g(s * mw, my + 0.02, 0.11, 0.11))
    folds = both(lambda s: line(x.grid.u - s * (mw + 0.04), 0.025))
    out.shade(-0.45 * folds * window(x.grid.v, my + 0.03, my + 0.25, 0.03))


def au17(x: AuInputs, out: AuLayer) -> None:
    """AU17 chin raiser: chin boss up pushing the lower lip up, mentalis crease and dimpled chin."""
    g, sp = x.grid.gauss, x.subject
    chin = sp.mouth_y + sp.lower_lip
    out.move(0.0, -0.09 * g(0.0, chin + 0.2, 0.22, 0.14))
    stipple = 0.5 + 0.5 * np.sin(x.grid.u * 55.0) * np.sin(x.grid.v * 55.0)
    out.shade(-0.5 * g(0.0, chin + 0.09, 0.18, 0.022) - 0.3 * stipple * g(0.0, chin + 0.26, 0.14, 0.07))


def au23(x: AuInputs, out: AuLayer) -> None:
    """AU23 lip tightener: mouth narrower, red margins thinner and pale."""
    g, my, mw = x.grid.gauss, x.subject.mouth_y, x.subject.mouth_w
    for s in (-1.0, 1.0):
        out.move(-s * 0.09 * g(s * 0.8 * mw, my, 0.13, 0.1), 0.0)
    out.move(0.0, -0.4 * (x.grid.v - x.mouth_v) * g(0.0, my, 0.9 * mw, 0.08))
    out.recolour(x.skin_rgb, 0.75 * x.lips)


def au24(x: AuInputs, out: AuLayer) -> None:
    """AU24 lip pressor: lips pressed flat together, skin bulging above and below, a dark closed line."""
    g, sp = x.grid.gauss, x.subject
    my, mw = sp.mouth_y, sp.mouth_w
    out.move(0.0, -0.7 * (x.grid.v - x.mouth_v) * g(0.0, my, 0.95 * mw, 0.07))
    out.shade(0.22 * g(0.0, my - sp.upper_lip - 0.05, 0.2, 0.035) + 0.22 * g(0.0, my + sp.lower_lip + 0.05, 0.2, 0.035)
              - 0.6 * line(x.grid.v - x.mouth_v, 0.02) * window(np.abs(x.grid.u), -1.0, mw, 0.03) - 0.2 * x.lips)


AU_DRAWERS: dict[str, Callable[[AuInputs, AuLayer], None]] = {
    "AU01": au01, "AU02": au02, "AU04": au04, "AU06": au06, "AU07": au07, "AU10": au10,
    "AU12": au12, "AU14": au14, "AU15": au15, "AU17": au17, "AU23": au23, "AU24": au24,
}


def draw_aus(deltas: np.ndarray, flows: np.ndarray, inputs: AuInputs, strength: float = 1.0,
             reliefs: np.ndarray | None = None) -> None:
    """Adds each AU's change at full intensity into deltas[:12] and flows[:12] (`AU_NAMES` order).

    Args:
      deltas: (>= 12, S, S, 3) colour changes in grey levels, updated in place.
      flows: (>= 12, S, S, 2) content displacements (dx, dy) in pixels, updated in place.
      inputs: the drawn face (`AuInputs`).
      strength: scales every AU's motion and shading.
      reliefs: None, or (>= 12, S, S) that receive the AUs' relative shading (`AuLayer.relief`).
    """
    for i, name in enumerate(AU_NAMES):
        relief = None if reliefs is None else reliefs[i]
        AU_DRAWERS[name](inputs, AuLayer(deltas[i], flows[i], inputs, strength, relief))
