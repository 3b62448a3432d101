"""SyntheticConfig: invalid settings are user errors."""

from __future__ import annotations

import pytest

from bigsmall_jax import synthetic as sy
from bigsmall_jax.errors import UserError

# Small, fast settings: 96-pixel frames.
TINY = sy.SyntheticConfig(n_subjects=4, videos_per_subject=2, duration_s=2.0, frame_size=96)


def test_config_errors_are_user_errors():
    for bad in (dict(n_subjects=0), dict(fps=0), dict(frame_size=8), dict(noise_std=-1),
                dict(hr_range_bpm=(100.0, 50.0)), dict(jpeg_quality=0), dict(val_fraction=0.6, test_fraction=0.5)):
        with pytest.raises(UserError, match="SyntheticConfig"):
            sy.SyntheticConfig(**bad)
    with pytest.raises(UserError, match="outside"):
        sy.generate_recording(9, 0, TINY)
