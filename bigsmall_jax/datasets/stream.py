"""The paper's preprocessing of a video too long to hold in memory: decoded, cropped and preprocessed in blocks.

The recipe (`bigsmall_jax.datasets.preprocess`) standardizes Big with the mean and std of the whole video
and divides the Small frame differences by their std over the whole video, so no model input is known
before the last frame has been seen. Instead of holding the video, the source is decoded more than once,
a block of frames at a time (`video_io.VideoFrames`; `video_io.ArrayFrames` serves frames already in
memory the same way):

1. face boxes: frame 0 for the modes with one box ("first", "none", "box"); for "every" and "median" a
   whole pass that runs the detector on every ``crop_every``-th frame. The boxes come from the same
   functions as `face_boxes.face_boxes` (`detect_enlarged`, `first_box`, `boxes_from_detections`);
2. statistics: a pass that crops and resizes every frame to the Big size and feeds
   `preprocess.VideoStatistics`, the running sums `preprocess_recording` uses, accumulated over the same
   blocks of frames, so the mean and the two stds are the same bits;
3. model inputs (`ScannedVideo.blocks`): a last pass that crops and resizes again and yields the uint8 Big
   frames and the float32 Small frames block by block (a block's last Small frame waits for the next
   block's first frame), for `evaluation.evaluate.predict_stream`.

What stays in memory is one block of decoded frames, the (T, 4) boxes and the per-frame outputs; the Big
and Small frames are equal to `preprocess_recording`'s.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from bigsmall_jax.datasets.face_boxes import boxes_from_detections, detect_enlarged, detection_frames, first_box
from bigsmall_jax.datasets.preprocess import PreprocessConfig, VideoStatistics, crop_resize_u8, small_frames
from bigsmall_jax.datasets.video_io import ArrayFrames, VideoFrames

log = logging.getLogger(__name__)

BLOCK_FRAMES = 32  # decoded frames held at a time (32 frames of 640x480 RGB: 29 MB)


@dataclasses.dataclass
class ScannedVideo:
    """A video after the face-box and statistics passes, ready to yield model inputs.

    Attributes:
      frames: the source, read again by `blocks`.
      config: the preprocessing settings (`big_size`, `small_size`, the face crop).
      boxes: (T, 4) int64 crop box (x, y, w, h) of every frame.
      first_frame: (H, W, 3) uint8 frame 0.
      big_mean, big_std: statistics of the resized face frames (`PreprocessedVideo.big_mean` / `big_std`).
      diff_std: std of the frame differences over the whole video (0: no pixel ever changes).
      block_frames: decoded frames per block.
    """

    frames: VideoFrames | ArrayFrames
    config: PreprocessConfig
    boxes: np.ndarray
    first_frame: np.ndarray
    big_mean: float
    big_std: float
    diff_std: float
    block_frames: int = BLOCK_FRAMES

    @property
    def num_frames(self) -> int:
        return int(self.boxes.shape[0])

    def blocks(self, progress: bool | None = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Decodes the video once more, yielding (Big uint8 (n, B, B, 3), Small float32 (n, S, S, 3)) for
        consecutive frames; Small is what `preprocess_recording` computes (the last frame's is zero)."""
        c, prev, start = self.config, None, 0
        with tqdm(total=self.num_frames, desc="model inputs", unit="frame", leave=False,
                  disable=None if progress is None else not progress) as bar:
            for block in self.frames.blocks(self.block_frames):
                n = len(block)
                big = crop_resize_u8(block, self.boxes[start : start + n], c.big_size)
                ext = big if prev is None else np.concatenate([prev[None], big])
                if len(ext) > 1:
                    yield ext[:-1], small_frames(ext, self.diff_std, c.small_size)
                prev, start = big[-1], start + n
                bar.update(n)
        yield prev[None], np.zeros((1, c.small_size, c.small_size, 3), np.float32)


def _detect(frames: VideoFrames | ArrayFrames, config: PreprocessConfig, source: str, block_frames: int,
            known_box: Sequence[int] | None, progress: bool | None) -> tuple[dict, np.ndarray, int | None]:
    """Pass 1: ({frame: enlarged box} as `boxes_from_detections` takes it, frame 0, T when the pass read the
    whole video else None)."""
    if config.face_crop not in ("every", "median"):
        frame0 = next(frames.blocks(1))[0].copy()
        return {0: first_box(frame0, config, source, known_box)}, frame0, None
    found, frame0, start = {}, None, 0
    for block in tqdm(frames.blocks(block_frames), desc="face detection", unit="block", leave=False,
                      disable=None if progress is None else not progress):
        if frame0 is None:
            frame0 = block[0].copy()
        first = -(-start // config.crop_every) * config.crop_every  # the first detection frame >= start
        for i in detection_frames(start + len(block), config)[first // config.crop_every:]:
            if (box := detect_enlarged(block[i - start], i, config, source)) is not None:
                found[i] = box
        start += len(block)
    return found, frame0, start


def scan_video(frames: VideoFrames | ArrayFrames, config: PreprocessConfig, source: str = "",
               known_box: Sequence[int] | None = None, block_frames: int = BLOCK_FRAMES,
               progress: bool | None = False) -> ScannedVideo:
    """The face-box and statistics passes over a video (see the module docstring).

    Args:
      frames: the source.
      config: preprocessing settings (`face_crop`, `crop_every`, `enlarge`, `big_size`, `small_size`).
      source: the file, for messages.
      known_box: tight face box for ``face_crop="box"``.
      block_frames: decoded frames held at a time.
      progress: tqdm bars (None: only on a terminal).

    Raises:
      UserError: as `face_boxes.face_boxes`, and as the source's `blocks`.
    """
    source = source or str(frames.path)
    found, frame0, t = _detect(frames, config, source, block_frames, known_box, progress)
    h, w = frame0.shape[:2]
    boxes = boxes_from_detections(found, t, h, w, config, source) if t is not None else None
    stats, start = VideoStatistics(), 0
    for block in tqdm(frames.blocks(block_frames), desc="statistics", unit="block", leave=False,
                      disable=None if progress is None else not progress):
        n = len(block)
        block_boxes = boxes[start : start + n] if boxes is not None else np.tile(np.array(found[0]), (n, 1))
        stats.add(crop_resize_u8(block, block_boxes, config.big_size))
        start += n
    if boxes is None:
        boxes = boxes_from_detections(found, start, h, w, config, source)
    big_mean, big_std, diff_std = stats.finish(source)
    return ScannedVideo(frames=frames, config=config, boxes=boxes, first_frame=frame0, big_mean=big_mean,
                        big_std=big_std, diff_std=diff_std, block_frames=block_frames)
