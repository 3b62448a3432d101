"""``python -m bigsmall_jax.evaluate``."""

from bigsmall_jax.evaluation.evaluate import main

if __name__ == "__main__":
    main()
