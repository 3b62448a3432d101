"""Package data: the shipped models' weights, configs, licence and model card (read by
`bigsmall_jax.checkpoints.published`)."""
