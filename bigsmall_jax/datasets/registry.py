"""The supported datasets, one entry each: short name, raw-data reader, TFDS builder class and notes.

Short names (``--dataset`` of ``python -m bigsmall_jax.prepare``): ``synthetic``, ``bp4d_plus``,
``ubfc_rppg``, ``pure``, ``generic``; the TFDS name of each is ``bigsmall_<name>``. `get` accepts either
and names the valid ones otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

from bigsmall_jax.datasets.readers.common import Reader
from bigsmall_jax.datasets.recording import Recording
from bigsmall_jax.datasets.tfds_builders import (
    BigsmallBp4dPlus,
    BigSmallBuilder,
    BigSmallConfig,
    BigsmallGeneric,
    BigsmallPure,
    BigsmallSynthetic,
    BigsmallUbfcRppg,
    derive_config,
)
from bigsmall_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One supported dataset.

    Attributes:
      name: the short name (the builder's TFDS name without ``bigsmall_``).
      builder: its TFDS builder class.
      reader: its raw-data reader (``iter_recordings``, ``list_subjects``), the builder's ``READER``; None
        for generated data.
      notes: what the dataset holds, in a line.
    """

    name: str
    builder: type[BigSmallBuilder]
    reader: Reader | None
    notes: str


def _entry(builder: type[BigSmallBuilder], notes: str) -> Dataset:
    return Dataset(name=builder.name.removeprefix("bigsmall_"), builder=builder,
                   reader=getattr(builder, "READER", None), notes=notes)


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    _entry(BigsmallSynthetic, "generated faces with known pulse, respiration and AUs (bigsmall_jax.synthetic)"),
    _entry(BigsmallBp4dPlus, "BP4D+ .mat trials: 12 AUs, blood pressure / POS pulse, respiration; paper's folds"),
    _entry(BigsmallUbfcRppg, "UBFC-rPPG videos with PPG and HR (pulse only)"),
    _entry(BigsmallPure, "PURE image sequences with PPG and pulse rate (pulse only)"),
    _entry(BigsmallGeneric, "any videos with optional per-frame CSV labels"),
)}


def get(name: str) -> Dataset:
    """The dataset of short name `name` (or TFDS name ``bigsmall_<name>``); `UserError` listing the valid names."""
    short = name.removeprefix("bigsmall_")
    if short not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[short]


def builder_class(dataset: str) -> type[BigSmallBuilder]:
    """The TFDS builder class of a dataset, by short name ("synthetic") or TFDS name ("bigsmall_synthetic")."""
    return get(dataset).builder


def make_config(dataset: str, config: str | None = None, **overrides) -> BigSmallConfig:
    """A dataset's named config, with `overrides` applied as a config of a derived name.

    See `bigsmall_jax.datasets.tfds_builders.derive_config` (``dataset``: short or TFDS name).
    """
    return derive_config(builder_class(dataset), config, **overrides)


def get_reader(name: str) -> Reader:
    """The raw-data reader of dataset `name`; `UserError` listing the datasets that have one otherwise."""
    readers = sorted(n for n, d in DATASETS.items() if d.reader is not None)
    if name not in readers:
        raise UserError(f"unknown dataset {name!r}; valid: {', '.join(readers)}")
    return DATASETS[name].reader


def iter_recordings(dataset: str, root: str | os.PathLike, **kwargs) -> Iterator[Recording]:
    """The recordings of dataset `dataset` (a short name with a reader) under `root`."""
    return get_reader(dataset).iter_recordings(root, **kwargs)


def list_subjects(dataset: str, root: str | os.PathLike) -> list[str]:
    """The sorted subject ids of dataset `dataset` under `root`."""
    return get_reader(dataset).list_subjects(root)
