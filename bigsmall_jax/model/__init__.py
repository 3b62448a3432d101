"""The network: its configuration, layers, the BigSmall module family, the named variants and FLOPs.

Import the model from here (``from bigsmall_jax.model import ModelConfig, build_model``). Inside:
`config` (`ModelConfig`), `layers` (the temporal shift and the XLA:CPU-tuned ops), `bigsmall` (the
modules and their helpers), `variants` (the named variants) and `flops` (XLA cost analysis).
"""

from bigsmall_jax.model.bigsmall import (
    BigSmall,
    abstract_variables,
    big_stem,
    build_model,
    count_params,
    dummy_inputs,
    init_variables,
)
from bigsmall_jax.model.config import ModelConfig
from bigsmall_jax.model.variants import (
    AUTHOR_CLASSES,
    NAMED_VARIANTS,
    SINGLE_TASK_VARIANTS,
    named_config,
    variant_name,
)

__all__ = [
    "AUTHOR_CLASSES", "NAMED_VARIANTS", "SINGLE_TASK_VARIANTS", "BigSmall", "ModelConfig", "abstract_variables",
    "big_stem", "build_model", "count_params", "dummy_inputs", "init_variables", "named_config", "variant_name",
]
