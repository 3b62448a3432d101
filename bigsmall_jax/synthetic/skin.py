"""Skin optics: RGB diffuse reflectance of a two-layer skin from melanin and blood, and the pulse's colour.

The epidermis absorbs by melanin (volume fraction `melanin`) and is crossed twice; the dermis absorbs by
blood (volume fraction `blood`) and scatters, and its diffuse reflectance follows the diffusion
approximation of a semi-infinite medium, R_d = exp(-7 / sqrt(3 (1 + mu_s' / mu_a))). A camera sees

    R_c = exp(-2 * d_epi * melanin * mu_mel,c) * R_d(mu_a,c = blood * mu_blood,c + mu_base,c, mu_s',c)

per colour band c, seen through overlapping camera colour filters (`CROSSTALK`). The pulse is a small
relative change of the dermal blood volume, so its colour
direction is d ln R / d ln blood: it follows from the absorption spectra (haemoglobin absorbs most in
green; blue barely reaches the vessels through melanin and strong scattering), not from a fixed ratio.

Optical constants (band centroids 610 / 550 / 465 nm for R / G / B, lengths in mm):

* whole blood at 150 g/L haemoglobin, 80% oxygen saturation: molar extinction of oxy- and
  deoxyhaemoglobin (Prahl's tabulation) at the band centroids, mu_a = ln(10) * eps * 150 / 64500 M;
* melanosome absorption 6.6e11 * lambda^-3.33 per cm (Jacques 1998); its melanin in a 0.03 mm basal layer;
* dermal reduced scattering 4.6 * (lambda / 500 nm)^-1.42 per mm and a bloodless background absorption
  0.025 per mm (Jacques 2013, "Optical properties of biological tissues: a review").
"""

from __future__ import annotations

import numpy as np

BAND_NM = np.array([610.0, 550.0, 465.0])  # R, G, B centroids
_EPS_HBO2 = np.array([1800.0, 43016.0, 38800.0])  # cm^-1 / M at BAND_NM
_EPS_HB = np.array([10000.0, 53788.0, 15350.0])
_SATURATION = 0.8
MU_BLOOD = np.log(10.0) * (_SATURATION * _EPS_HBO2 + (1 - _SATURATION) * _EPS_HB) * (150.0 / 64500.0) / 10.0
MU_MELANOSOME = 6.6e11 * BAND_NM ** -3.33 / 10.0  # per mm
MU_SCATTER = 4.6 * (BAND_NM / 500.0) ** -1.42  # dermal reduced scattering, per mm
MU_BASE = 0.025  # bloodless dermis absorption, per mm
EPIDERMIS_MM = 0.03  # melanin-bearing (basal) layer

MELANIN_RANGE = (0.01, 0.43)  # very light to very dark skin (Jacques: 1.3-43% in melanosomes)
BLOOD_RANGE = (0.009, 0.016)  # dermal blood volume fraction
# Camera colour filters overlap: each camera channel (row) sees a mix of the three bands (columns).
CROSSTALK = np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.2, 0.75]])


def reflectance(melanin, blood) -> np.ndarray:
    """Diffuse RGB reflectance in (0, 1) of skin with melanin and blood volume fractions.

    Args:
      melanin, blood: scalars or arrays of the same shape (...).

    Returns:
      (..., 3) float64 reflectance of the R, G, B bands.
    """
    m = np.asarray(melanin, np.float64)[..., None]
    f = np.asarray(blood, np.float64)[..., None]
    epidermis = np.exp(-2.0 * EPIDERMIS_MM * m * MU_MELANOSOME)
    mu_a = f * MU_BLOOD + MU_BASE
    dermis = np.exp(-7.0 / np.sqrt(3.0 * (1.0 + MU_SCATTER / mu_a)))
    return epidermis * dermis


def band_pulse_direction(blood) -> np.ndarray:
    """d ln R / d ln blood per band: relative band reflectance change per relative blood volume change
    (negative: more blood, darker). Analytic derivative of `reflectance`'s dermis term; the epidermis
    does not pulse (it scales R and dR alike).

    Returns:
      (..., 3) float64.
    """
    f = np.asarray(blood, np.float64)[..., None]
    mu_a = f * MU_BLOOD + MU_BASE
    x = MU_SCATTER / mu_a
    dlnr_dlnmua = -10.5 * x * (3.0 * (1.0 + x)) ** -1.5
    return dlnr_dlnmua * (f * MU_BLOOD / mu_a)


def camera_rgb(band_reflectance: np.ndarray) -> np.ndarray:
    """(..., 3) camera RGB of (..., 3) band reflectances: the filter `CROSSTALK` mix."""
    return np.asarray(band_reflectance) @ CROSSTALK.T


def pulse_direction(melanin, blood) -> np.ndarray:
    """d ln RGB / d ln blood as the camera sees it (through `CROSSTALK`): (..., 3) float64, negative."""
    r = reflectance(melanin, blood)
    return camera_rgb(r * band_pulse_direction(blood)) / camera_rgb(r)


def skin_rgb(melanin: float, blood: float, white: float = 255.0) -> np.ndarray:
    """(3,) the grey levels of skin under a white light that makes a perfect diffuser `white`, after a
    camera colour gain that maps the mid skin of `MELANIN_RANGE` / `BLOOD_RANGE` to a neutral-balanced
    skin tone (cameras white-balance, which the bare reflectances do not include)."""
    return white * CAMERA_GAIN * camera_rgb(reflectance(melanin, blood))


# Camera RGB gain: scales the reflectance of mid-range skin to a typical white-balanced skin colour
# (R > G > B, 220 / 170 / 140 of 255), so light and dark skins keep their physical ratios.
CAMERA_GAIN = np.array([220.0, 170.0, 140.0]) / 255.0 / camera_rgb(reflectance(0.06, 0.012))
