"""Random bytes for ids (request ids, trace and span ids), read from the system 4 KiB at a time.

    take(16)   # 16 bytes from os.urandom's stream, without a system call most of the time

On the platform's event loop every system call also hands the GIL to the
store's writer and reader threads and waits to get it back (a `futex` each
way): one `getrandom` per 256 request ids rather than one per id, and none
per trace or span id. Safe across threads and forks (a forked child never
hands out what its parent will).
"""

from __future__ import annotations

import os
import threading

#: Bytes read from the system at a time.
POOL_BYTES = 4096


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes = b""
        self._used = 0
        os.register_at_fork(after_in_child=self._forget)

    def take(self, count: int) -> bytes:
        with self._lock:
            if self._used + count > len(self._bytes):
                self._bytes, self._used = os.urandom(max(POOL_BYTES, count)), 0
            used = self._used
            self._used = used + count
            return self._bytes[used : used + count]

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._bytes, self._used = b"", 0


_POOL = _Pool()


def take(count: int) -> bytes:
    """`count` random bytes (as `os.urandom(count)`), each handed out once."""
    return _POOL.take(count)
