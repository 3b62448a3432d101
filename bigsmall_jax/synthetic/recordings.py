"""Recordings: the per-frame signals of a video, its rendered frames and labels, and the subject splits.

Everything is a deterministic function of (seed, subject index, video index): the random streams are
`config.rng(seed, subject, 1)` appearance, `(seed, subject, video, 2)` nuisances, `(..., 3)` signals and
`(..., 4)` sensor noise; `(seed, 0, 0, 5)` orders the subjects for the splits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from bigsmall_jax.datasets.recording import Recording
from bigsmall_jax.errors import UserError
from bigsmall_jax.synthetic import waveforms
from bigsmall_jax.synthetic.appearance import subject_params, video_params
from bigsmall_jax.synthetic.config import SyntheticConfig, VideoParams, recording_name, rng, subject_id
from bigsmall_jax.synthetic.render import render_frames
from bigsmall_jax.synthetic.scene import build_scene

DEFAULT_CONFIG = SyntheticConfig()


@dataclasses.dataclass
class Signals:
    """The per-frame signals of one video, before rendering (T frames).

    Attributes:
      bvp: (T,) PPG wave, about [0, 1.1]. resp: (T,) respiration wave, about [-1, 1], up = inhale.
      hr_bpm, rr_bpm: (T,) instantaneous rates. au_intensity: (T, 12) in [0, 1].
      blink: (T,) eye closure in [0, 1]. head: (T, 3) head x, y (pixels) and rotation (degrees).
      light: (T,) global light gain.
    """

    bvp: np.ndarray
    resp: np.ndarray
    hr_bpm: np.ndarray
    rr_bpm: np.ndarray
    au_intensity: np.ndarray
    blink: np.ndarray
    head: np.ndarray
    light: np.ndarray


def video_signals(subject_index: int, video_index: int, config: SyntheticConfig,
                  video: VideoParams | None = None) -> Signals:
    """The signals of one video (deterministic by seed, subject, video); no rendering."""
    if video is None:
        video = video_params(subject_params(subject_index, config.seed), subject_index, video_index, config)
    n, fps = config.num_frames, float(config.fps)
    r = rng(config.seed, subject_index, video_index, 3)
    resp, rr = waveforms.resp_wave(r, n, fps, config.rr_range_bpm, config.rr_drift_bpm)
    bvp, hr = waveforms.pulse_wave(r, n, fps, config.hr_range_bpm, config.hr_drift_bpm, resp)
    au = waveforms.au_intensities(r, n, fps)
    blink = waveforms.blink_track(r, n, fps, config.blink_rate_hz * r.uniform(0.5, 1.5))
    head = np.stack([
        video.head_px * waveforms.smooth_noise(r, n, fps, 0.25),
        0.3 * video.head_px * waveforms.smooth_noise(r, n, fps, 0.1),
        video.head_deg * waveforms.smooth_noise(r, n, fps, 0.2),
    ], axis=1)
    light = video.light_level * (1.0 + video.illumination_drift * waveforms.smooth_noise(r, n, fps, 0.05))
    return Signals(bvp=bvp, resp=resp, hr_bpm=hr, rr_bpm=rr, au_intensity=au, blink=blink, head=head, light=light)


def frame_weights(signals: Signals) -> tuple[np.ndarray, np.ndarray]:
    """(T, N_DELTAS) delta weights and (T, N_FLOWS) flow weights of `render_frames` for some signals."""
    pulse = signals.bvp - np.mean(signals.bvp)
    delta_w = np.concatenate([signals.au_intensity, pulse[:, None], signals.blink[:, None]], axis=1)
    flow_w = np.concatenate([signals.au_intensity, signals.resp[:, None], signals.head], axis=1)
    return delta_w, flow_w


def generate_recording(subject_index: int, video_index: int, config: SyntheticConfig = DEFAULT_CONFIG
                       ) -> Recording:
    """One synthetic video with its labels, deterministic by (config.seed, subject_index, video_index).

    Returns:
      A `Recording` named like ``"S03_V1"`` (subject ``"S03"``): frames (T, S, S, 3) uint8, bvp (PPG),
      resp, au (T, 12) {0, 1}, hr_bpm and rr_bpm (instantaneous), and `face_box`.
    """
    if not 0 <= subject_index < config.n_subjects or not 0 <= video_index < config.videos_per_subject:
        raise UserError(f"synthetic recording ({subject_index}, {video_index}) outside "
                        f"{config.n_subjects} subjects x {config.videos_per_subject} videos")
    if config.style == "physical":
        from bigsmall_jax.synthetic.physical import generate_physical  # builds on this module's siblings
        return generate_physical(subject_index, video_index, config)
    subject = subject_params(subject_index, config.seed)
    video = video_params(subject, subject_index, video_index, config)
    signals = video_signals(subject_index, video_index, config, video)
    scene = build_scene(subject, video, config.frame_size, config.au_strength)
    delta_w, flow_w = frame_weights(signals)
    frames = render_frames(scene, delta_w, flow_w, signals.light, video.noise_std,
                           rng(config.seed, subject_index, video_index, 4),
                           config.jpeg_quality if config.compression else None)
    return synthetic_recording(subject_index, video_index, config, frames, signals, scene.face_box)


def synthetic_recording(subject_index: int, video_index: int, config: SyntheticConfig, frames: np.ndarray, signals,
                        face_box, style: str = "", extra: dict[str, np.ndarray] | None = None) -> Recording:
    """The `Recording` of rendered synthetic frames and the signals they were rendered from.

    Args:
      frames: (T, S, S, 3) uint8.
      signals: the video's signals: ``bvp``, ``resp``, ``hr_bpm``, ``rr_bpm`` (T,) and ``au_intensity``
        (T, 12) (either style's).
      face_box: (x, y, w, h) of the face in the frames.
      style: named in the recording's ``source`` when not the default style.
      extra: further per-video arrays (`Recording.extra`).
    """
    name = recording_name(subject_index, video_index)
    tag = f",{style}" if style else ""
    return Recording(
        name=name, subject=subject_id(subject_index), frames=frames, fps=float(config.fps),
        bvp=signals.bvp.astype(np.float32), resp=signals.resp.astype(np.float32),
        au=waveforms.au_labels(signals.au_intensity), hr_bpm=signals.hr_bpm.astype(np.float32),
        rr_bpm=signals.rr_bpm.astype(np.float32), source=f"synthetic:{name}(seed={config.seed}{tag})",
        face_box=face_box, extra=dict(extra or {}),
    )


def iter_recordings(config: SyntheticConfig = DEFAULT_CONFIG,
                    subjects: Sequence[str] | None = None) -> Iterator[Recording]:
    """Every recording (subject-major order), generated lazily; optionally only those of `subjects` ids."""
    keep = None if subjects is None else set(subjects)
    for s in range(config.n_subjects):
        if keep is not None and subject_id(s) not in keep:
            continue
        for v in range(config.videos_per_subject):
            yield generate_recording(s, v, config)


def _held_out_count(n: int, fraction: float) -> int:
    """round(n * fraction) subjects, at least one when the fraction is > 0 and n >= 3."""
    k = int(round(n * fraction))
    return max(k, 1) if fraction > 0 and n >= 3 else k


def subject_splits(config: SyntheticConfig = DEFAULT_CONFIG) -> dict[str, list[str]]:
    """Subject-independent "train" / "validation" / "test" subject ids, deterministic by seed.

    With n subjects, round(n * test_fraction) and round(n * val_fraction) subjects (at least one each
    when the fraction is > 0 and n >= 3) are held out; the rest train. Default 12 subjects: 8 / 2 / 2.
    """
    n = config.n_subjects
    order = rng(config.seed, 0, 0, 5).permutation(n)
    n_test = _held_out_count(n, config.test_fraction)
    n_val = _held_out_count(n, config.val_fraction)
    n_test = min(n_test, max(n - 1, 0))
    n_val = min(n_val, max(n - 1 - n_test, 0))
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return {name: [subject_id(i) for i in sorted(idx)]
            for name, idx in (("train", train), ("validation", val), ("test", test))}
