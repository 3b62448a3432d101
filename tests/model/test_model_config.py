"""`ModelConfig`: invalid fields and unknown keys are clear errors."""

import pytest

from bigsmall_jax.errors import UserError
from bigsmall_jax.model import ModelConfig


def test_bad_model_config_is_a_clear_error():
    with pytest.raises(UserError, match="shift 'sideways'"):
        ModelConfig(shift="sideways")
    with pytest.raises(UserError, match=r"unknown model config key\(s\) \['n_segments'\]"):
        ModelConfig.from_dict({"n_segments": 3})


@pytest.mark.parametrize("field, value, message", [
    ("n_segment", "abc", "n_segment must be an integer, got 'abc'"),
    ("n_segment", 3.5, "n_segment must be an integer, got 3.5"),
    ("n_segment", True, "n_segment must be an integer, got True"),
    ("big_pools", (2, 0, 4), "big_pools must be a non-empty list of integers >= 1, got [2, 0, 4]"),
    ("big_filters", "abc", "big_filters must be a list of integers, got 'abc'"),
    ("fold_div", 0, "fold_div must be >= 2"),
    ("dense_units", "abc", "dense_units must be an integer, got 'abc'"),
    ("dense_units", 0, "dense_units must be >= 1, got 0"),
    ("dense_units", -1, "dense_units must be >= 1, got -1"),
    ("dropout", (2.0, 0.5, 0.5), "dropout rates must lie in [0, 1), got [2.0, 0.5, 0.5]"),
    ("dropout", (float("nan"), 0.5, 0.5), "dropout must be a list of finite numbers"),
    ("bvp", "yes", "bvp must be true or false, got 'yes'"),
    ("shift", 3, "shift must be a string, got 3"),
])
def test_wrong_types_and_ranges_are_named_before_any_arithmetic(field, value, message):
    """Types are checked before `int()` or ``//`` touch a value (a JSON file may hold anything)."""
    with pytest.raises(UserError) as err:
        ModelConfig.from_dict({field: value}, source="cfg.json")
    assert str(err.value).startswith("cfg.json: invalid model config: ") and message in str(err.value)


def test_numpy_numbers_and_lists_become_plain_values():
    import numpy as np

    c = ModelConfig(n_segment=np.int64(4), big_filters=[4, 4, 4, 8, 8, 8], small_filters=(4, 4, 4, 8),
                    dropout=[0, 0.5, 0.5])
    assert type(c.n_segment) is int and c.big_filters == (4, 4, 4, 8, 8, 8) and c.dropout == (0.0, 0.5, 0.5)
    assert ModelConfig.from_dict(c.to_dict()) == c
