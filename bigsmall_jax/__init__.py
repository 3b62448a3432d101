"""bigsmall-jax: BigSmall (Narayanswamy et al., WACV 2024) in JAX/Flax.

One network measures facial action units, the pulse wave and the respiration wave from face video.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy imports keep `import bigsmall_jax` light (no JAX start-up for the data tools).
    if name == "load_checkpoint":
        from bigsmall_jax.checkpoints.load import load_checkpoint

        return load_checkpoint
    if name in ("BigSmall", "ModelConfig", "build_model"):
        from bigsmall_jax import model

        return getattr(model, name)
    raise AttributeError(f"module 'bigsmall_jax' has no attribute {name!r}")


__all__ = ["BigSmall", "ModelConfig", "build_model", "load_checkpoint"]
