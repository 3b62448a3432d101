"""Video reading / writing: round trips, image folders, and every kind of bad file."""

from __future__ import annotations

import logging
import struct
import subprocess

import imageio
import imageio_ffmpeg
import numpy as np
import pytest

from bigsmall_jax.datasets.video_io import VideoFrames, _FrameBuffer, read_video, write_video
from bigsmall_jax.errors import UserError


def _frames(t=5, h=9, w=13, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv"])
def test_lossless_round_trip_is_exact(tmp_path, suffix):
    frames = _frames()  # odd sizes on purpose
    path = tmp_path / f"clip{suffix}"
    write_video(path, frames, 25.0, lossless=True)
    got, fps = read_video(path)
    assert fps == pytest.approx(25.0)
    np.testing.assert_array_equal(got, frames)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_lossy_round_trip_is_close(tmp_path):
    y, x = np.mgrid[0:32, 0:32]
    frames = np.stack([np.stack([x * 6 + i, y * 6, (x + y) * 3], -1) for i in range(4)]).astype(np.uint8)
    write_video(tmp_path / "v.mp4", frames, 30.0)
    got, fps = read_video(tmp_path / "v.mp4")
    assert got.shape == frames.shape and fps == pytest.approx(30.0)
    assert np.abs(got.astype(int) - frames).mean() < 2.5


def test_max_frames_and_fps_override(tmp_path):
    frames = _frames(t=6)
    write_video(tmp_path / "v.mp4", frames, 25.0, lossless=True)
    got, fps = read_video(tmp_path / "v.mp4", fps=12.5, max_frames=4)
    np.testing.assert_array_equal(got, frames[:4])
    assert fps == 12.5


def test_image_folder_sorted(tmp_path):
    frames = _frames(t=3)
    for i in (2, 0, 1):
        imageio.v3.imwrite(tmp_path / f"Image{i:04d}.png", frames[i])
    (tmp_path / "notes.txt").write_text("not an image")
    got, fps = read_video(tmp_path, fps=30.0)
    np.testing.assert_array_equal(got, frames)
    assert fps == 30.0
    with pytest.raises(UserError, match="no frame rate"):
        read_video(tmp_path)


def test_image_folder_grey_and_rgba_become_rgb(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgba = np.dstack([_frames(1, 3, 4)[0], np.full((3, 4), 255, np.uint8)])
    imageio.v3.imwrite(tmp_path / "a.png", grey)
    imageio.v3.imwrite(tmp_path / "b.png", rgba)
    got, _ = read_video(tmp_path, fps=1.0)
    np.testing.assert_array_equal(got[0], np.repeat(grey[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(got[1], rgba[:, :, :3])


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match=r"missing\.mp4: no such file"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(UserError, match=r"empty\.mp4: file is empty"):
        read_video(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video" * 50)
    with pytest.raises(UserError, match=r"junk\.mp4: cannot open as a video"):
        read_video(tmp_path / "junk.mp4")
    (tmp_path / "nofolder").mkdir()
    with pytest.raises(UserError, match="no image files"):
        read_video(tmp_path / "nofolder", fps=30.0)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"x\.png: cannot decode image"):
        read_video(tmp_path / "bad", fps=30.0)


def test_truncated_video_is_user_error(tmp_path):
    write_video(tmp_path / "v.mp4", _frames(t=8, h=32, w=32), 25.0, lossless=True)
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(UserError, match=r"cut\.mp4"):
        read_video(tmp_path / "cut.mp4")


def test_write_rejects_bad_frames(tmp_path):
    with pytest.raises(UserError, match="uint8"):
        write_video(tmp_path / "v.mp4", np.zeros((2, 4, 4, 3), np.float32), 25.0)
    with pytest.raises(UserError, match="frame rate"):
        write_video(tmp_path / "v.mp4", np.zeros((2, 4, 4, 3), np.uint8), 0.0)
    assert not list(tmp_path.iterdir())


def test_frame_buffer_grows_and_keeps_every_frame():
    """Whatever the capacity hint (too small, exact, far too large), the frames come back in order."""
    frames = _frames(t=11)
    for hint in (1, 11, 1000):
        buf = _FrameBuffer("clip.mp4", hint)
        for f in frames:
            buf.append(f)
        got = buf.frames()
        np.testing.assert_array_equal(got, frames)
        assert got.base is None or len(got.base) <= 11 + 11 // 10 + 1  # no large unused tail is kept alive
    buf = _FrameBuffer("clip.mp4", 4)
    buf.append(frames[0])
    with pytest.raises(UserError, match=r"clip\.mp4.*frame 1 has size"):
        buf.append(frames[0][:5])


def test_long_video_estimate_is_only_a_hint(tmp_path):
    """The buffer is sized from the container's duration: every frame still comes back, and max_frames
    below that estimate returns just those frames."""
    frames = _frames(t=40, h=8, w=8)
    write_video(tmp_path / "v.mkv", frames, 25.0, lossless=True)
    np.testing.assert_array_equal(read_video(tmp_path / "v.mkv")[0], frames)
    np.testing.assert_array_equal(read_video(tmp_path / "v.mkv", max_frames=7)[0], frames[:7])


def test_image_folder_of_mixed_sizes_names_the_odd_image(tmp_path):
    imageio.v3.imwrite(tmp_path / "a.png", _frames(t=1, h=8, w=8)[0])
    imageio.v3.imwrite(tmp_path / "b.png", _frames(t=1, h=8, w=9)[0])
    with pytest.raises(UserError, match=r"b\.png: frame 1 has size \(8, 9\)"):
        read_video(tmp_path, fps=10.0)


# ------------------------------------------------- containers that claim more frames than they hold


def _claims_ten_hours(tmp_path, frames: np.ndarray):
    """A lossless .mkv of `frames` whose Segment Info Duration is patched to 10 hours (36e6 ms)."""
    path = tmp_path / "ten_hours.mkv"
    write_video(path, frames, 25.0, lossless=True)
    data = bytearray(path.read_bytes())
    i = data.find(b"\x44\x89\x88")  # EBML Duration element, an 8-byte float
    assert i > 0
    data[i + 3 : i + 11] = struct.pack(">d", 36e6)
    path.write_bytes(bytes(data))
    return path


def test_a_header_claiming_ten_hours_allocates_nothing_from_it(tmp_path, caplog):
    """Preallocating 900001 frames of 640x480 from the header was 'Unable to allocate 772 GiB'; the buffer
    now starts at most 256 MiB and the short file reads, with a warning about the missing frames."""
    frames = _frames(t=3, h=480, w=640)
    path = _claims_ten_hours(tmp_path, frames)
    with caplog.at_level(logging.WARNING):
        got, fps = read_video(path)
    np.testing.assert_array_equal(got, frames)
    assert "decoded 3 frames (0.1 s) but the container declares about 900000 (36000.0 s)" in caplog.text


def test_truncated_faststart_video_is_reported(tmp_path, caplog):
    """An mp4 with its index first ('faststart') cut in half decodes about half its frames without an
    error from FFmpeg; read_video and VideoFrames say so."""
    frames = _frames(t=100, h=48, w=64)
    write_video(tmp_path / "whole.mp4", frames, 25.0)
    faststart = tmp_path / "faststart.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", tmp_path / "whole.mp4",
                    "-c", "copy", "-movflags", "+faststart", faststart], check=True)
    data = faststart.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        got, _ = read_video(cut)
    assert 20 < len(got) < 80
    assert f"cut.mp4: decoded {len(got)} frames" in caplog.text and "probably truncated" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        read_video(tmp_path / "whole.mp4")  # the whole file: no warning
        assert sum(len(b) for b in VideoFrames(cut).blocks()) == len(got)
    assert caplog.text.count("probably truncated") == 1
