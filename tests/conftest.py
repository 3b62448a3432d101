"""Shared test fixtures.

`tiny_synthetic_dataset` is one small synthetic TFDS dataset built once per test run (once in all: with
pytest-xdist the workers share it under a lock) for every test that needs stored clips: the TFDS
builder and input pipeline tests, training and evaluation.
"""

from __future__ import annotations

import os

import pytest
from tiny_data import TINY_SYNTHETIC


def _shared_tmp(tmp_path_factory) -> os.PathLike:
    """A temporary folder of this test run shared by all xdist workers (the run's own folder otherwise)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def tiny_synthetic_dataset(tmp_path_factory):
    """(data_dir, builder) of a tiny built synthetic dataset (splits train / validation / test).

    Read a split with ``bigsmall_jax.datasets.tfds_builders.data_source(builder, "train")``. The settings are
    `TINY_SYNTHETIC`; ``builder.builder_config.synthetic`` holds the SyntheticConfig fields.
    """
    from bigsmall_jax.datasets.prepare import ensure_dataset

    data_dir = _shared_tmp(tmp_path_factory) / "tiny_synthetic_tfds"
    builder = ensure_dataset("synthetic", data_dir, progress=False, **TINY_SYNTHETIC)
    return data_dir, builder
