"""Settings of the tiny synthetic dataset that `conftest.tiny_synthetic_dataset` builds once per test run.

4 subjects x 2 videos of 2 s at 25 fps (50 frames: 16 full clips + 1 padded clip each), 64-pixel frames, the
paper's 144 / 9 model resolution. "pad" keeps the last 2 frames of every video (frame_mask tests).
"""

TINY_SYNTHETIC = dict(n_subjects=4, videos_per_subject=2, duration_s=2.0, fps=25.0, frame_size=64, seed=0,
                      tail="pad")
