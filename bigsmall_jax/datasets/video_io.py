"""Reading and writing face videos robustly.

`read_video` returns every frame of a video file (any container FFmpeg decodes: mp4, avi, mkv, mov, ...)
or of a folder of images, as one (T, H, W, 3) uint8 RGB array plus the frame rate in Hz. Every way a file
can be bad (missing, empty, not a video, truncated to zero frames, frames of different sizes) becomes a
`UserError` naming the file. `write_video` writes H.264 mp4 atomically (a temporary file renamed at the
end), lossless (``libx264rgb``, QP 0) when asked, which the synthetic data uses so that a pulse of a
fraction of a grey level survives the round trip exactly.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path

import imageio
import numpy as np

from bigsmall_jax.errors import UserError, file_error
from bigsmall_jax.files import atomic_path

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")


def _as_rgb_u8(frame: np.ndarray, path: object) -> np.ndarray:
    """One decoded frame (H, W), (H, W, 1|3|4), uint8 or uint16 -> (H, W, 3) uint8 RGB."""
    frame = np.asarray(frame)
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise file_error(path, f"unsupported pixel type {frame.dtype} (expected 8-bit images)")
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
        raise file_error(path, f"unsupported frame shape {frame.shape}")
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    return np.ascontiguousarray(frame[:, :, :3])


class _FrameBuffer:
    """Frames appended into one preallocated (capacity, H, W, 3) uint8 array, grown by half when full, so
    that a video is held once in memory (a list of frames stacked at the end would hold it twice)."""

    def __init__(self, path: object, capacity_hint: int):
        self.path, self.hint, self.n = path, max(1, int(capacity_hint)), 0
        self.buf: np.ndarray | None = None

    def append(self, frame: np.ndarray, source: object = None) -> None:
        """Adds one (H, W, 3) frame; a size unlike the first frame's is a `UserError` naming `source` (default:
        the video)."""
        if self.buf is None:
            self.buf = np.empty((self.hint, *frame.shape), np.uint8)
        elif frame.shape != self.buf.shape[1:]:
            raise file_error(source or self.path, f"frame {self.n} has size {frame.shape[:2]}, the first frame "
                                                  f"{self.buf.shape[1:3]}")
        if self.n == len(self.buf):
            grown = np.empty((self.n + max(1, self.n // 2), *frame.shape), np.uint8)
            grown[: self.n] = self.buf
            self.buf = grown
        self.buf[self.n] = frame
        self.n += 1

    def frames(self) -> np.ndarray:
        """(n, H, W, 3); a copy only when more than a tenth of the buffer is unused."""
        assert self.buf is not None
        out = self.buf[: self.n]
        return out.copy() if len(self.buf) - self.n > len(self.buf) // 10 else out


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a folder, sorted by name (zero-padded frame numbers sort in time order)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _read_image_folder(folder: Path, max_frames: int | None) -> np.ndarray:
    files = list_image_files(folder)
    if not files:
        raise file_error(folder, f"folder has no image files ({', '.join(IMAGE_EXTENSIONS)})")
    if max_frames is not None:
        files = files[:max_frames]
    frames = _FrameBuffer(folder, len(files))
    for f in files:
        try:
            img = imageio.v3.imread(f, plugin="pillow")
        except (OSError, RuntimeError, ValueError, SyntaxError) as e:  # Pillow's decoder failures
            raise file_error(f, f"cannot decode image ({type(e).__name__}: {e})") from None
        frames.append(_as_rgb_u8(img, f), source=f)
    return frames.frames()


def _iter_ffmpeg(path: Path) -> Iterator[np.ndarray | tuple[float, int]]:
    """Yields (frame rate, estimated frame count from the container's duration; 0 if unknown), then every
    frame, of a video file decoded by FFmpeg."""
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
    except (OSError, RuntimeError, ValueError, StopIteration) as e:
        raise file_error(path, f"cannot open as a video ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    try:
        meta = reader.get_meta_data()
        fps = float(meta.get("fps", float("nan")))
        estimate = float(meta.get("duration") or 0) * fps
        yield fps, int(math.ceil(estimate)) + 1 if math.isfinite(estimate) and estimate > 0 else 0
        # Iterate; `list(reader)` would ask for len() which is inf for streams of unknown length.
        yield from reader.iter_data()
    except (RuntimeError, OSError, ValueError) as e:
        raise file_error(path, f"video is corrupt ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    finally:
        reader.close()


def read_video(
    path: str | os.PathLike, fps: float | None = None, max_frames: int | None = None
) -> tuple[np.ndarray, float]:
    """Reads every frame of a video file or of a folder of images.

    Args:
      path: a video file, or a folder whose image files (sorted by name) are the frames.
      fps: frame rate in Hz. Overrides the container's for files; required for image folders, which
        carry none.
      max_frames: read at most this many frames (None: all).

    Returns:
      frames: (T, H, W, 3) uint8 RGB, T >= 1.
      fps: frames per second (Hz).

    Raises:
      UserError: missing path, undecodable or corrupt file, zero frames, unknown frame rate.
    """
    path = Path(path)
    if not path.exists():
        raise file_error(path, "no such file or folder")
    if path.is_dir():
        if fps is None:
            raise file_error(path, "a folder of images has no frame rate; give fps")
        frames = _read_image_folder(path, max_frames)
    else:
        if path.stat().st_size == 0:
            raise file_error(path, "file is empty")
        gen = _iter_ffmpeg(path)
        file_fps, estimate = next(gen)
        hint = estimate or 256  # frames: from the container's duration when it has one
        buffer = _FrameBuffer(path, hint if max_frames is None else min(hint, max_frames))
        for frame in gen:
            buffer.append(_as_rgb_u8(frame, path))
            if max_frames is not None and buffer.n >= max_frames:
                gen.close()
                break
        if not buffer.n:
            raise file_error(path, "video has no frames")
        frames = buffer.frames()
        if fps is None:
            fps = file_fps
    if not (math.isfinite(fps) and fps > 0):
        raise file_error(path, f"invalid frame rate {fps!r}")
    log.debug("read %s: %d frames of %dx%d at %.3f fps", path, *frames.shape[:3], fps)
    return frames, float(fps)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float, lossless: bool = False) -> None:
    """Writes (T, H, W, 3) uint8 RGB frames as an H.264 mp4, atomically.

    Args:
      path: output file (``.mp4``); its folder is created if needed.
      frames: (T, H, W, 3) uint8 RGB, T >= 1. Any H, W (odd sizes are kept, not padded).
      fps: frame rate in Hz.
      lossless: True: ``libx264rgb`` at QP 0, decoded back bit-exactly by `read_video`; False:
        ``libx264`` yuv444p at CRF 18 (visually lossless, a few grey levels of error).
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise UserError(f"write_video {path}: frames must be (T, H, W, 3) uint8 with T >= 1, "
                        f"got {frames.shape} {frames.dtype}")
    if not (math.isfinite(fps) and fps > 0):
        raise UserError(f"write_video {path}: invalid frame rate {fps!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if lossless:
        codec, pixfmt, params = "libx264rgb", "rgb24", ["-qp", "0", "-preset", "veryfast"]
    else:
        codec, pixfmt, params = "libx264", "yuv444p", ["-crf", "18", "-preset", "veryfast"]
    with atomic_path(path, suffix=path.suffix or ".mp4") as tmp:
        writer = imageio.get_writer(
            tmp, format="FFMPEG", fps=float(fps), codec=codec, pixelformat=pixfmt, macro_block_size=1,
            output_params=params, ffmpeg_log_level="error",
        )
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()
