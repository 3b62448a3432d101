"""The network: its configuration, layers, the BigSmall module family, the named variants and FLOPs."""
