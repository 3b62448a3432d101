"""Training: configs and overrides, losses, the optimizer, the pmapped step, checkpoints and the loop."""
