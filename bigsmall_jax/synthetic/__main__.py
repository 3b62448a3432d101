"""``python -m bigsmall_jax.synthetic``."""

from bigsmall_jax.synthetic.cli import main

if __name__ == "__main__":
    main()
