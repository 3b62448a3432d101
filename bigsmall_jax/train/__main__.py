"""``python -m bigsmall_jax.train``."""

from bigsmall_jax.train.trainer import main

if __name__ == "__main__":
    main()
