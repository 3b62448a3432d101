"""The benchmark: FLOPs, latency, throughput against the matmul peak, and the input pipeline."""
