"""Training configs: each ``configs/NAME.py`` has ``get_config() -> ml_collections.ConfigDict``.

All of them derive from `configs.common.base_config`; see ``python -m bigsmall_jax.train --help``.
"""
