"""One trainer per run directory: an advisory ``fcntl.flock`` on ``RUN/.lock``.

The lock belongs to the open file, so it dies with the process however that ends (a crash, a
SIGKILL, a machine reboot leaves no stale lock to clean up). The file holds the holder's pid, so
a refused second process can say who holds the run.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import RunLockedError

LOCK_FILE = ".lock"


class RunLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process's end)."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, run_dir: str | Path) -> "RunLock":
        path = Path(run_dir) / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunLockedError(f"{run_dir} is in use: process {holder} is training in it"
                                 f" (wait for it to finish, or stop it, before --resume or --overwrite)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the lock; the file stays (no unlink race)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
