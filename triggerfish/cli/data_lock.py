"""One `triggerfish dev` per data directory: an exclusive OS file lock, held for the life of the process.

Two platforms on one store would both run its schedules, queues and
asynchronous invocations, and each would hot-reload over the other's workers.
The lock is `flock(2)` on `dev.lock` in the data directory: the kernel
releases it when the process ends, however it ends (kill -9 included), so a
crashed run never leaves a stale lock behind. The file holds the holder's pid,
only to name it in the refusal.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "dev.lock"


class DataDirBusy(Exception):
    """Another process holds the data directory's lock."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        self.data_dir = data_dir
        self.holder = holder
        who = f"process {holder}" if holder else "another process"
        super().__init__(
            f"{data_dir} is in use by {who} (another `triggerfish dev` of this app?); stop that one,"
            " or give this one a data directory of its own with --data-dir"
        )


class DataDirLock:
    """An exclusive lock on `data_dir`, taken by `acquire()` and released by `release()` or the process's end."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting; DataDirBusy when another process holds it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise DataDirBusy(self.data_dir, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
