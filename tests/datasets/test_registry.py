"""The dataset registry: one entry per dataset, lookups with clear errors, configs by name."""

from __future__ import annotations

import json

import pytest

from bigsmall_jax.datasets import readers as ds
from bigsmall_jax.datasets import registry
from bigsmall_jax.errors import UserError


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(UserError, match=r"unknown dataset 'bp4d'; valid: bp4d_plus, generic, pure, ubfc_rppg"):
        registry.get_reader("bp4d")
    with pytest.raises(UserError, match="unknown dataset"):
        list(registry.iter_recordings("nope", tmp_path))


def test_missing_root_is_user_error(tmp_path):
    for name in ("bp4d_plus", "ubfc_rppg", "pure"):
        with pytest.raises(UserError, match=r"missing: dataset root is not a folder"):
            registry.list_subjects(name, tmp_path / "missing")


def test_make_config_names_and_errors():
    base = registry.make_config("synthetic")
    assert base.name == "default" and registry.make_config("bigsmall_synthetic", "default") is base
    a = registry.make_config("synthetic", n_subjects=3, duration_s=2)
    assert a.name.startswith("default-")
    assert a.name == registry.make_config("synthetic", duration_s=2, n_subjects=3).name
    assert a.synthetic == {"n_subjects": 3, "duration_s": 2}
    assert isinstance(a.synthetic["duration_s"], float)  # a float setting: 2 is stored as 2.0
    assert registry.make_config("synthetic", n_subjects=3, duration_s=2, n_segment=4).name != a.name
    assert registry.make_config("bp4d_plus", "fold2").fold == 2
    with pytest.raises(UserError, match="unknown dataset 'nope'; valid: synthetic, bp4d_plus"):
        registry.make_config("nope")
    with pytest.raises(UserError, match="unknown config 'fold9'; valid: fold1, fold2, fold3"):
        registry.make_config("bp4d_plus", "fold9")
    with pytest.raises(UserError, match="unknown setting 'n_subjects'"):
        registry.make_config("ubfc_rppg", n_subjects=3)  # synthetic-only setting
    with pytest.raises(UserError, match="unknown label kind"):
        registry.make_config("generic", labels=["ppg"])


@pytest.mark.parametrize("dataset,same", [
    ("synthetic", [dict(duration_s=2, fps=25, frame_size=64), dict(duration_s=2.0, fps=25.0, frame_size=64.0)]),
    ("generic", [dict(big_size=72, split_fractions=[["train", 1], ["test", 0]]),
                 dict(big_size=72.0, split_fractions=(("train", 1.0), ("test", 0.0)))]),
])
def test_equal_settings_written_differently_are_one_dataset(dataset, same):
    """Ints for float settings and integral floats for int ones name the same derived config (one data
    directory); a setting equal to the named config's is no override at all."""
    a, b = (registry.make_config(dataset, **s) for s in same)
    assert a.name == b.name and a.name.startswith("default-")
    assert json.dumps(a.settings(), sort_keys=True) == json.dumps(b.settings(), sort_keys=True)
    base = registry.make_config(dataset)
    assert registry.make_config(dataset, n_segment=float(base.n_segment)) is base


def test_bp4d_folds_use_pos_for_training_and_bp_for_test():
    cfg = registry.make_config("bp4d_plus", "fold1")
    assert (cfg.train_bvp_key, cfg.test_bvp_key) == ("pos_env_norm_bvp", "bvp")
    assert set(cfg.labels) == {"bvp", "resp", "au"}


def test_one_entry_per_dataset_with_its_builder_and_reader():
    assert list(registry.DATASETS) == ["synthetic", "bp4d_plus", "ubfc_rppg", "pure", "generic"]
    for name, entry in registry.DATASETS.items():
        assert entry.name == name and entry.builder.name == f"bigsmall_{name}" and entry.notes
        assert registry.get(name) is entry and registry.get(f"bigsmall_{name}") is entry
        assert registry.builder_class(name) is entry.builder
        assert entry.reader is (None if name == "synthetic" else entry.builder.READER)
    assert registry.get_reader("pure") is ds.pure.READER
    with pytest.raises(UserError, match=r"unknown dataset 'imagenet'; valid: synthetic, bp4d_plus, ubfc_rppg, pure, "
                                        r"generic$"):
        registry.get("imagenet")
    with pytest.raises(UserError, match="unknown dataset 'synthetic'; valid: bp4d_plus"):
        registry.get_reader("synthetic")  # generated, not read from raw files


def test_builder_names_versions_and_configs_are_unchanged():
    """What datasets already built on disk are found by: TFDS name, class, version and config names."""
    expected = {
        "synthetic": ("bigsmall_synthetic", "BigsmallSynthetic", ["default"]),
        "bp4d_plus": ("bigsmall_bp4d_plus", "BigsmallBp4dPlus", ["fold1", "fold2", "fold3"]),
        "ubfc_rppg": ("bigsmall_ubfc_rppg", "BigsmallUbfcRppg", ["default", "all_test"]),
        "pure": ("bigsmall_pure", "BigsmallPure", ["default", "all_test"]),
        "generic": ("bigsmall_generic", "BigsmallGeneric", ["default", "all_test"]),
    }
    for name, (tfds_name, cls_name, configs) in expected.items():
        cls = registry.builder_class(name)
        version = "1.5.0" if name == "synthetic" else "1.0.0"  # the synthetic data follows its generator
        assert (cls.name, cls.__name__, str(cls.VERSION)) == (tfds_name, cls_name, version)
        assert [c.name for c in cls.BUILDER_CONFIGS] == configs
    # Configs with overrides keep their hashed names (the data directories of datasets built before; an int
    # given for a float setting is hashed as the float since settings are normalized: 2 -> 2.0).
    assert registry.make_config("synthetic", n_subjects=3, duration_s=2.0).name == "default-e392ff66"
    assert registry.make_config("synthetic", n_subjects=3, duration_s=2).name == "default-e392ff66"
    # The fold configs crop no face (the published recipe), so this override is the named config itself.
    assert registry.make_config("bp4d_plus", "fold1", face_crop="none").name == "fold1"
    assert registry.make_config("bp4d_plus", "fold1", face_crop="first").name.startswith("fold1-")
