"""The network: its configuration, layers, the BigSmall module family, the named variants and FLOPs.

Import the model from here (``from bigsmall_jax.model import ModelConfig, build_model``); the modules
inside are an implementation detail.
"""

from bigsmall_jax.model.bigsmall import (
    NAMED_VARIANTS,
    SINGLE_TASK_VARIANTS,
    BigSmall,
    ModelConfig,
    big_stem,
    build_model,
    count_params,
    dummy_inputs,
    init_variables,
    named_config,
)

__all__ = [
    "NAMED_VARIANTS", "SINGLE_TASK_VARIANTS", "BigSmall", "ModelConfig", "big_stem", "build_model", "count_params",
    "dummy_inputs", "init_variables", "named_config",
]
