"""`ModelConfig`: invalid fields and unknown keys are clear errors."""

import pytest

from bigsmall_jax.errors import UserError
from bigsmall_jax.model import ModelConfig


def test_bad_model_config_is_a_clear_error():
    with pytest.raises(UserError, match="shift 'sideways'"):
        ModelConfig(shift="sideways")
    with pytest.raises(UserError, match=r"unknown model config key\(s\) \['n_segments'\]"):
        ModelConfig.from_dict({"n_segments": 3})
