"""``python -m bigsmall_jax.infer``."""

from bigsmall_jax.inference.video import main

if __name__ == "__main__":
    main()
