"""Reading and writing face videos robustly.

`read_video` returns every frame of a video file (any container FFmpeg decodes: mp4, avi, mkv, mov, ...)
or of a folder of images, as one (T, H, W, 3) uint8 RGB array plus the frame rate in Hz. Every way a file
can be bad (missing, empty, not a video, truncated to zero frames, frames of different sizes) becomes a
`UserError` naming the file. `write_video` writes H.264 mp4 atomically (a temporary file renamed at the
end), lossless (``libx264rgb``, QP 0) when asked, which the synthetic data uses so that a pulse of a
fraction of a grey level survives the round trip exactly.

`VideoFrames` reads the same sources block by block instead, each pass decoding the file again, so that a
long video never has to fit in memory (`bigsmall_jax.datasets.stream`); `ArrayFrames` serves decoded
frames through the same interface. Both readers warn when a file decodes to clearly fewer frames than its
container declares (a truncated file), and neither preallocates memory from the container's claims.
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

# imageio-ffmpeg starts FFmpeg with ``preexec_fn=os.setpgrp`` unless this is set: Python code run in the
# forked child before exec, which JAX (multithreaded once started) warns may deadlock, and which `infer`
# hits because it decodes while the model runs. Without it the child only execs FFmpeg (no Python code
# after the fork); the cost is that Ctrl-C reaches FFmpeg as well, which then stops with the program.
os.environ.setdefault("IMAGEIO_FFMPEG_NO_PREVENT_SIGINT", "1")

# A container's duration is only a hint: the frame buffer starts at most this big and grows as frames arrive.
_MAX_PREALLOC_BYTES = 256 << 20
# A file that decodes to fewer than this fraction of the frames its container declares is reported as truncated.
_TRUNCATED_FRACTION = 0.9
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
            self.buf = np.empty((min(self.hint, max(1, _MAX_PREALLOC_BYTES // frame.nbytes)), *frame.shape),
                                np.uint8)
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


def _image_files(folder: Path) -> list[Path]:
    files = list_image_files(folder)
    if not files:
        raise file_error(folder, f"folder has no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _read_image(f: Path) -> np.ndarray:
    """One image file as (H, W, 3) uint8 RGB."""
    try:
        img = imageio.v3.imread(f, plugin="pillow")
    except (OSError, RuntimeError, ValueError, SyntaxError) as e:  # Pillow's decoder failures
        raise file_error(f, f"cannot decode image ({type(e).__name__}: {e})") from None
    return _as_rgb_u8(img, f)


def _read_image_folder(folder: Path, max_frames: int | None) -> np.ndarray:
    files = _image_files(folder)
    if max_frames is not None:
        files = files[:max_frames]
    frames = _FrameBuffer(folder, len(files))
    for f in files:
        frames.append(_read_image(f), source=f)
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


def check_frame_count(path: object, n_decoded: int, n_declared: int, fps: float) -> bool:
    """Warns when a file decoded to fewer than 90% of the frames its container declares.

    Args:
      path: the file, for the message.
      n_decoded: frames actually decoded.
      n_declared: the container's duration x frame rate, rounded up, plus one (`_iter_ffmpeg`'s estimate;
        0: unknown, nothing is checked).
      fps: frame rate (Hz), for the message.

    Returns:
      True when the file looks truncated (and a warning was logged).
    """
    declared = n_declared - 1  # the estimate rounds up and adds one
    if n_declared <= 0 or n_decoded >= _TRUNCATED_FRACTION * declared:
        return False
    log.warning("%s: decoded %d frames (%.1f s) but the container declares about %d (%.1f s): the file is "
                "probably truncated; the results cover only the decoded part", path, n_decoded,
                n_decoded / fps, declared, declared / fps)
    return True


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
        if max_frames is None:
            check_frame_count(path, buffer.n, estimate, file_fps)
        frames = buffer.frames()
        if fps is None:
            fps = file_fps
    if not (math.isfinite(fps) and fps > 0):
        raise file_error(path, f"invalid frame rate {fps!r}")
    log.debug("read %s: %d frames of %dx%d at %.3f fps", path, *frames.shape[:3], fps)
    return frames, float(fps)


class VideoFrames:
    """A video file or folder of images read in blocks of frames, one decoding pass per `blocks` call.

    Attributes:
      path: the file or folder.
      fps: frame rate in Hz (the given one, else the container's).
      num_frames: frames decoded by the last complete pass (None before the first).
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None):
        """Opens the source once to check it and read its frame rate.

        Raises:
          UserError: missing path, empty or undecodable file, an image folder without `fps`, an invalid
            frame rate.
        """
        self.path = Path(path)
        self.num_frames: int | None = None
        self._declared = 0
        if not self.path.exists():
            raise file_error(self.path, "no such file or folder")
        if self.path.is_dir():
            if fps is None:
                raise file_error(self.path, "a folder of images has no frame rate; give fps")
            self._files = _image_files(self.path)
        else:
            if self.path.stat().st_size == 0:
                raise file_error(self.path, "file is empty")
            self._files = None
            gen = _iter_ffmpeg(self.path)
            file_fps, self._declared = next(gen)
            gen.close()
            fps = file_fps if fps is None else fps
        if not (math.isfinite(fps) and fps > 0):
            raise file_error(self.path, f"invalid frame rate {fps!r}")
        self.fps = float(fps)

    def _frames(self) -> Iterator[tuple[np.ndarray, object]]:
        """(H, W, 3) uint8 frames with the file each came from."""
        if self._files is not None:
            for f in self._files:
                yield _read_image(f), f
            return
        gen = _iter_ffmpeg(self.path)
        next(gen)
        try:
            for frame in gen:
                yield _as_rgb_u8(frame, self.path), self.path
        finally:
            gen.close()

    def blocks(self, size: int = 64) -> Iterator[np.ndarray]:
        """Decodes the whole source once, yielding (n, H, W, 3) uint8 blocks of `size` frames (the last one
        shorter).

        Every block is a view of one buffer that the next block overwrites (a new allocation per block
        fragments the heap under `runtime`'s allocator settings): copy what must outlive the block.

        Raises:
          UserError: no frames, frames of different sizes, a pass that decodes a different number of
            frames than the previous one (the file changed).
        """
        buf, k, n = None, 0, 0
        for frame, source in self._frames():
            if buf is None:
                buf = np.empty((size, *frame.shape), np.uint8)
            elif frame.shape != buf.shape[1:]:
                raise file_error(source, f"frame {n} has size {frame.shape[:2]}, the first frame {buf.shape[1:3]}")
            buf[k] = frame
            k, n = k + 1, n + 1
            if k == size:
                yield buf
                k = 0
        if k:
            yield buf[:k]
        if not n:
            raise file_error(self.path, "video has no frames")
        if self.num_frames is None:
            check_frame_count(self.path, n, self._declared, self.fps)
        elif n != self.num_frames:
            raise file_error(self.path, f"decoded {n} frames, {self.num_frames} in the previous pass (the file "
                                        "changed while it was read)")
        self.num_frames = n


class ArrayFrames:
    """Decoded (T, H, W, 3) uint8 frames behind `VideoFrames`' interface (blocks are views, no copies)."""

    def __init__(self, frames: np.ndarray, fps: float, path: str = "<frames>"):
        self.frames, self.fps, self.path = frames, float(fps), path
        self.num_frames = int(frames.shape[0])

    def blocks(self, size: int = 64) -> Iterator[np.ndarray]:
        for start in range(0, self.num_frames, size):
            yield self.frames[start : start + size]


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
