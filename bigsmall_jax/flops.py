"""``python -m bigsmall_jax.flops``."""

from bigsmall_jax.model.flops import main

if __name__ == "__main__":
    main()
