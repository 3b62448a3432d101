"""Training configs: named configs, overrides, validation, resume checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bigsmall_jax.datasets.recording import BP4D_AU_POS_WEIGHT
from bigsmall_jax.errors import UserError
from bigsmall_jax.model import ModelConfig
from bigsmall_jax.train.config import (
    REMOVED_KEYS,
    RESUME_FREE_KEYS,
    apply_overrides,
    config_differences,
    config_to_json,
    flat_keys,
    load_config,
    model_config,
    validate_config,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["synthetic", "bp4d_fold1", "bp4d_fold2", "bp4d_fold3", "big_au", "small_bvp",
                                  "small_resp"])
def test_named_configs_load_and_validate(name):
    config = load_config(name)
    mc = validate_config(config)
    if name.startswith("bp4d") or name in ("big_au", "small_bvp", "small_resp"):
        assert config.dataset.name == "bp4d_plus"
        assert config.optim.lr == 1e-3 and config.optim.weight_decay == 0.0 and config.train.num_epochs == 5
        assert config.train.select == "last"
        want = () if name.startswith("small") else BP4D_AU_POS_WEIGHT  # no AU head, no AU weights
        assert tuple(config.loss.au_pos_weight) == want
    expected_heads = {"big_au": ["au"], "small_bvp": ["bvp"], "small_resp": ["resp"]}.get(name, ["au", "bvp", "resp"])
    assert [h for h, _ in mc.heads] == expected_heads


def test_config_by_path_and_folds_differ():
    a = load_config(str(ROOT / "configs" / "bp4d_fold2.py"))
    assert a.dataset.config == "fold2"
    with pytest.raises(UserError, match="no such config file"):
        load_config("no_such_config")


def test_overrides_parse_literals_and_dotted_keys():
    config = load_config("synthetic")
    apply_overrides(config, ["model.n_segment=4", "optim.lr=3e-4", "model.big_filters=(8,8,8,16,16,64)",
                                   "optim.schedule=one_cycle", "loss.pcgrad=True", "dataset.settings.n_subjects=5"])
    assert config.model.n_segment == 4 and config.optim.lr == 3e-4
    assert config.model.big_filters == (8, 8, 8, 16, 16, 64)
    assert config.optim.schedule == "one_cycle" and config.loss.pcgrad is True
    assert config.dataset.settings.n_subjects == 5
    assert model_config(config).n_segment == 4


@pytest.mark.parametrize("value", ["0", "-3"])
def test_bad_eval_batch_clips_fails_before_training(value):
    """The evaluation after training reads it: validate_config (run before the first step) refuses it."""
    config = apply_overrides(load_config("synthetic"), [f"train.eval_batch_clips={value}"])
    with pytest.raises(UserError, match=rf"train\.eval_batch_clips must be an integer >= 1.*got {value}"):
        validate_config(config)


def test_unknown_or_bad_override_is_a_user_error():
    config = load_config("synthetic")
    with pytest.raises(UserError, match=r"unknown config key 'optim\.learning_rate'.*optim\.lr"):
        apply_overrides(config, ["optim.learning_rate=1"])
    with pytest.raises(UserError, match=r"unknown config key 'nosection\.x'"):
        apply_overrides(config, ["nosection.x=1"])
    with pytest.raises(UserError, match="not of the form key=value"):
        apply_overrides(config, ["optim.lr"])
    with pytest.raises(UserError, match=r"train\.batch_clips"):
        apply_overrides(config, ["train.batch_clips='many'"])
    apply_overrides(config, ["model.variant='nonsense'"])
    with pytest.raises(UserError, match="variant"):
        validate_config(config)


def test_model_config_section_matches_model_config_fields():
    config = load_config("synthetic")
    assert set(config.model.keys()) == {f.name for f in dataclasses.fields(ModelConfig)}


def test_config_holds_the_experiment_only():
    """Test hooks and process settings are arguments and flags, not config keys."""
    keys = set(flat_keys(load_config("synthetic")))
    assert not keys & set(REMOVED_KEYS)
    assert set(RESUME_FREE_KEYS) <= keys


def test_config_differences_ignore_resume_free_and_removed_keys():
    """A config saved before the hooks and process settings left it still matches; other keys count."""
    current = config_to_json(load_config("synthetic"))
    saved = config_to_json(load_config("synthetic"))
    saved["train"].update(stop_after_steps=7, debug_nan_step=-1, log_every_steps=1, eval_batch_clips=3)
    saved.update(multihost=True, coordinator_address="10.0.0.1:1234", num_processes=2, process_id=1)
    saved["dataset"]["data_dir"] = "/elsewhere"
    assert config_differences(saved, current) == []
    saved["optim"]["lr"] = 0.5
    saved["train"]["new_key"] = 1
    assert config_differences(saved, current) == ["optim.lr", "train.new_key"]

