"""``python -m bigsmall_jax.prepare``."""

from bigsmall_jax.datasets.prepare import main

if __name__ == "__main__":
    main()
