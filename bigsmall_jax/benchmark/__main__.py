"""``python -m bigsmall_jax.benchmark``."""

from bigsmall_jax.benchmark.suite import main

if __name__ == "__main__":
    main()
