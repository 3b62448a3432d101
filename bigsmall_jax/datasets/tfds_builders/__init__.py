"""TFDS builders: preprocessed BigSmall clips stored as ArrayRecord files, one family per dataset.

`builder` holds what every family shares (config, features, the clips of a video, the base builder, storage
statistics and `data_source`); `families` the concrete builders (``bigsmall_synthetic``, ``bigsmall_bp4d_plus``,
``bigsmall_ubfc_rppg``, ``bigsmall_pure``, ``bigsmall_generic``). `bigsmall_jax.datasets.registry` finds a
family by its short name and makes configs (`registry.make_config`).
"""

from bigsmall_jax.datasets.tfds_builders.builder import (
                                                         LABEL_KINDS,
                                                         SPLITS,
                                                         TORCH_BYTES_PER_FRAME,
                                                         BigSmallBuilder,
                                                         BigSmallConfig,
                                                         check_source_dir,
                                                         clip_examples,
                                                         data_source,
                                                         split_by_fraction,
                                                         storage_stats,
)
from bigsmall_jax.datasets.tfds_builders.families import (
                                                         BigsmallBp4dPlus,
                                                         BigsmallGeneric,
                                                         BigsmallPure,
                                                         BigsmallSynthetic,
                                                         BigsmallUbfcRppg,
                                                         derive_config,
)

__all__ = [
    "LABEL_KINDS", "SPLITS", "TORCH_BYTES_PER_FRAME", "BigSmallBuilder", "BigSmallConfig", "BigsmallBp4dPlus",
    "BigsmallGeneric", "BigsmallPure", "BigsmallSynthetic", "BigsmallUbfcRppg", "check_source_dir", "clip_examples",
    "data_source", "derive_config", "split_by_fraction", "storage_stats",
]
