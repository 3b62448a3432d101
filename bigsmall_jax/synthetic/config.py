"""What to generate and the drawn parameters: `SyntheticConfig`, `SubjectParams`, `VideoParams`, ids and seeds.

Units: lengths of the face model are in face units, u = (x - cx) / a across (-1 left edge, +1 right
edge of the face in the image) and v = (y - cy) / b down (-1 top of the head, +1 chin), where (cx, cy)
is the face centre and a, b its half-width and half-height in pixels. Pixel quantities in
`SyntheticConfig` refer to a `REFERENCE_SIZE` (160) pixel frame and scale with `frame_size`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bigsmall_jax.datasets.recording import AU_NAMES
from bigsmall_jax.errors import UserError
from bigsmall_jax.synthetic import waveforms

REFERENCE_SIZE = 160  # pixel knobs of SyntheticConfig are given for a frame of this size
N_FLOWS = len(AU_NAMES) + 4  # 12 AUs, respiration, head x, head y, head rotation
N_DELTAS = len(AU_NAMES) + 2  # 12 AUs, pulse, blink


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """What to generate.

    Attributes:
      n_subjects: number of subjects; appearance is fixed per subject.
      videos_per_subject: videos per subject.
      duration_s: length of every video in seconds.
      fps: frame rate (Hz).
      frame_size: frames are frame_size x frame_size RGB.
      seed: everything is a deterministic function of (seed, subject index, video index).
      compression: JPEG-encode and decode every frame (quality `jpeg_quality`).
      jpeg_quality: 1..100.
      hr_range_bpm, rr_range_bpm: instantaneous heart and breathing rates stay inside these.
      hr_drift_bpm, rr_drift_bpm: largest slow excursion of the rate within a video (per video, a random
        fraction of it, 50-100%).
      pulse_amplitude: mean peak-to-peak pulse modulation of the green channel of cheek/forehead skin, as
        a fraction of the skin intensity (per subject x0.7-1.3, per video x0.85-1.15).
      resp_motion_px: mean peak-to-peak vertical head motion from breathing, pixels of a 160 frame
        (shoulders move 1.6x as much; per video x0.7-1.3).
      head_motion_px: largest random head translation, pixels of a 160 frame (vertical: 30% of it).
      head_rotation_deg: largest random in-plane head rotation, degrees.
      illumination_drift: largest slow relative change of the light level within a video.
      noise_std: mean sensor-noise standard deviation in grey levels (per video x0.5-1.5).
      blink_rate_hz: mean blink rate (Hz).
      au_strength: scales every AU's motion and shading (1: the default, deliberately exaggerated look).
      val_fraction, test_fraction: share of subjects held out for validation and test.
      style: "classic" (flat-shaded drawn faces, the default) or "physical" (`bigsmall_jax.synthetic.physical`:
        3D shading, skin optics, HRV, realistic nuisances; it ignores the classic look and nuisance knobs
        pulse_amplitude, resp_motion_px, head_motion_px, head_rotation_deg, illumination_drift, noise_std,
        compression and jpeg_quality, and draws its own at `nuisance` strength).
      blood_pulse: physical: mean peak-to-peak relative change of the dermal blood volume over a beat
        (per subject x0.7-1.3); the skin optics turn 0.02 into ~0.4% green on cheeks and forehead.
      nuisance: physical: scales head motion, fidgeting, talking, light changes, flicker and sensor noise (1:
        realistic, as calibrated against real footage in docs/realism.md).
      vary_format: physical: each video draws its own frame rate (25 or 30 fps, replacing `fps`) and frame
        size (160-720 pixels, log-uniform, replacing `frame_size`), so rates and looks are scale-free.
    """

    n_subjects: int = 12
    videos_per_subject: int = 2
    duration_s: float = 20.0
    fps: float = 25.0
    frame_size: int = 160
    seed: int = 0
    compression: bool = False
    jpeg_quality: int = 80
    hr_range_bpm: tuple[float, float] = waveforms.HR_RANGE_BPM
    rr_range_bpm: tuple[float, float] = waveforms.RR_RANGE_BPM
    hr_drift_bpm: float = 3.0
    rr_drift_bpm: float = 1.5
    pulse_amplitude: float = 0.012
    resp_motion_px: float = 1.5
    head_motion_px: float = 1.0
    head_rotation_deg: float = 0.8
    illumination_drift: float = 0.05
    noise_std: float = 2.0
    blink_rate_hz: float = 0.15
    au_strength: float = 1.0
    val_fraction: float = 1.0 / 6.0
    test_fraction: float = 1.0 / 6.0
    style: str = "classic"
    blood_pulse: float = 0.02
    nuisance: float = 1.0
    vary_format: bool = False

    def __post_init__(self):
        def bad(name, why):
            return UserError(f"SyntheticConfig.{name}: {why}, got {getattr(self, name)!r}")

        for name in ("n_subjects", "videos_per_subject"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "must be >= 1")
        for name in ("duration_s", "fps"):
            if not float(getattr(self, name)) > 0:
                raise bad(name, "must be > 0")
        if int(self.frame_size) < 48:
            raise bad("frame_size", "must be >= 48 pixels")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise bad("jpeg_quality", "must be in 1..100")
        for name in ("hr_drift_bpm", "rr_drift_bpm", "pulse_amplitude", "resp_motion_px", "head_motion_px",
                     "head_rotation_deg", "illumination_drift", "noise_std", "blink_rate_hz", "au_strength",
                     "blood_pulse", "nuisance"):
            if not float(getattr(self, name)) >= 0:
                raise bad(name, "must be >= 0")
        if self.style not in ("classic", "physical"):
            raise bad("style", 'must be "classic" or "physical"')
        if self.illumination_drift >= 1 or self.pulse_amplitude >= 0.5:
            raise bad("illumination_drift" if self.illumination_drift >= 1 else "pulse_amplitude", "too large")
        for name in ("hr_range_bpm", "rr_range_bpm"):
            lo, hi = getattr(self, name)
            if not 0 < lo < hi:
                raise bad(name, "must be (lo, hi) with 0 < lo < hi")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            raise UserError("SyntheticConfig.val_fraction / test_fraction: each in [0, 1) and their sum < 1, "
                            f"got {self.val_fraction!r}, {self.test_fraction!r}")

    @property
    def num_frames(self) -> int:
        """Frames per video."""
        return max(1, int(round(self.duration_s * self.fps)))


@dataclasses.dataclass(frozen=True)
class SubjectParams:
    """Appearance of one subject, the same in all its videos. Positions and sizes in face units.

    Colours are RGB in grey levels (0-255) under unit light.
    """

    skin_rgb: tuple[float, float, float]
    hair_rgb: tuple[float, float, float]
    brow_rgb: tuple[float, float, float]
    lip_rgb: tuple[float, float, float]
    iris_rgb: tuple[float, float, float]
    shirt_rgb: tuple[float, float, float]
    background_rgb: tuple[float, float, float]
    background2_rgb: tuple[float, float, float]
    aspect: float  # a / b
    chin_taper: float  # how much the face narrows towards the chin
    eye_y: float
    eye_dx: float  # |u| of the eye centres
    eye_w: float  # half width (u)
    eye_h: float  # half height of the opening above the centre line (v)
    brow_y: float  # v of the brow at its middle
    brow_inner: float  # |u| of the inner brow end
    brow_len: float  # brow length in u
    brow_thick: float  # v
    brow_arch: float  # v
    nose_y: float  # v of the nose tip
    nose_w: float  # half width of the nose wings (u)
    mouth_y: float
    mouth_w: float  # half width (u)
    upper_lip: float  # height (v)
    lower_lip: float  # height (v)
    mouth_curve: float  # v offset of the mouth corners (+ down)
    hairline: float  # v of the hairline at the middle
    hair_length: float  # v down to which side hair falls (-0.2 short .. 1.8 long)
    neck_w: float  # half width (u)
    perfusion: float  # relative pulse strength of this subject's skin
    pulse_forehead: float  # relative pulse weight of the forehead vs the cheeks
    texture_seed: int


@dataclasses.dataclass(frozen=True)
class VideoParams:
    """Per-video nuisances: where the face is and how the video is lit and recorded.

    Attributes:
      cx, cy: face centre in pixels. a, b: face half-width and half-height in pixels.
      light_dir: (x, y, z) unit direction towards the light (image axes, z towards the camera).
      light_level: mean light gain. light_gradient: (gx, gy) relative gain change across the frame.
      white_balance: RGB gains. illumination_drift: largest relative light drift.
      noise_std: sensor noise in grey levels. pulse_amp: green peak-to-peak pulse fraction on cheeks.
      resp_px: peak-to-peak vertical head motion from breathing, pixels. resp_scale: relative head scale
        change from breathing (peak). head_px, head_deg: random head motion amplitudes.
    """

    cx: float
    cy: float
    a: float
    b: float
    light_dir: tuple[float, float, float]
    light_level: float
    light_gradient: tuple[float, float]
    white_balance: tuple[float, float, float]
    illumination_drift: float
    noise_std: float
    pulse_amp: float
    resp_px: float
    resp_scale: float
    head_px: float
    head_deg: float


def rng(*keys: int) -> np.random.Generator:
    """The random generator of a tuple of integer keys, e.g. (seed, subject, video, stream)."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def subject_id(subject_index: int, config: SyntheticConfig | None = None) -> str:
    """The subject id of a subject index, e.g. ``"S03"`` (``config`` is accepted for symmetry)."""
    del config
    return f"S{int(subject_index):02d}"


def recording_name(subject_index: int, video_index: int) -> str:
    """The recording name, e.g. ``"S03_V1"``."""
    return f"{subject_id(subject_index)}_V{int(video_index)}"


