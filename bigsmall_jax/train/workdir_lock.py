"""An exclusive lock on a training workdir, held for the whole run, so two trainers never share one.

The lock is ``fcntl.flock`` on ``WORKDIR/.lock``, taken without waiting. The kernel releases a flock when its
process dies, so the lock file a killed run leaves behind never blocks a rerun; the file holds the pid of the
run that last took it, named when another run is refused.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from bigsmall_jax.errors import file_error

LOCK_NAME = ".lock"


def _holder_pid(fd: int) -> str:
    """The pid written in the lock file (``?`` when it is empty or unreadable)."""
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        return "?"
    return text if text.isdigit() else "?"


class WorkdirLock:
    """The exclusive lock of one workdir (see the module docstring); `acquire` it, `release` it at the end.

    Args:
      workdir: an existing run directory.
    """

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self._fd: int | None = None

    def acquire(self) -> WorkdirLock:
        """Takes the lock at once; raises a `UserError` naming the holder's pid when another run holds it."""
        try:
            fd = os.open(self.workdir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise file_error(self.workdir, f"cannot create the workdir lock ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder_pid(fd)
            os.close(fd)
            raise file_error(self.workdir, f"in use by another training run (pid {pid})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Releases the lock (closing the file releases the flock); the lock file stays for the next run."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WorkdirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
