"""Data: recordings, video I/O, dataset readers and their registry, preprocessing, TFDS builders and the
grain input pipeline."""
