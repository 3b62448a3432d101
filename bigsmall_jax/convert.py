"""``python -m bigsmall_jax.convert``."""

from bigsmall_jax.checkpoints.convert import main

if __name__ == "__main__":
    main()
