"""Random bytes for ids (request ids, trace and span ids), read from the system 4 KiB at a time.

    take(16)            # 16 bytes from os.urandom's stream, without a system call most of the time
    time_ordered(16)    # the time in milliseconds (6 bytes), then 10 of those random bytes
    uuid7_hex()         # a version 7 UUID made of those, as 32 hex digits
    uuid7_texts(50)     # 50 of them in the usual 8-4-4-4-12 form, for a batch: one clock read and one take
    uuid7_texts(50, "") # the same as 32 hex digits each

Time-ordered ids (request ids, the trace ids of traces the platform starts, queue message ids) exist for the
store: every invocation's record, kept input and span are keyed by them (`r/<request id>/...`, `t/<trace
id>/...`), and every queued message by its id (sent at the index's end, acknowledged from its start). Keys
drawn at random land on a random page of the key-value index each, and a commit of a batch of records wrote
every one of those pages in full (4 KiB each in SQLite's write-ahead log; PostgreSQL's B-tree alike); keys that
start with the time land at the index's right edge, on the same few pages, as the log's appends do.

On the platform's event loop every system call also hands the GIL to the
store's writer and reader threads and waits to get it back (a `futex` each
way): one `getrandom` per 256 request ids rather than one per id, and none
per trace or span id. Safe across threads and forks (a forked child never
hands out what its parent will).
"""

from __future__ import annotations

import os
import threading
import time

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


def time_ordered(count: int) -> bytes:
    """`count` bytes (at least 12): the Unix time in milliseconds, big-endian in 6 bytes, then random bytes.

    Ids made of these sort by when they were made (to the millisecond; in any order within one) and stay
    unique by their random part (at least 48 bits of it per millisecond).
    """
    return (time.time_ns() // 1_000_000).to_bytes(6) + _POOL.take(count - 6)


#: A version 7 UUID's fixed bits (RFC 9562): the version nibble (7) and the variant (10).
_UUID7_KEEP = 0xFFFFFFFF_FFFF_0FFF_3FFF_FFFFFFFFFFFF
_UUID7_SET = 0x00000000_0000_7000_8000_000000000000


def uuid7_hex() -> str:
    """A version 7 UUID (RFC 9562: the time in milliseconds, then random bits) as 32 lowercase hex digits."""
    return f"{(int.from_bytes(time_ordered(16)) & _UUID7_KEEP) | _UUID7_SET:032x}"


# The variant's hex digit (binary 10xx) from any hex digit: its low two bits are the UUID's random bits 63 and 62.
_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def uuid7_texts(count: int, separator: str = "-") -> list[str]:
    """`count` version 7 UUIDs in their usual text form (`str(uuid.UUID(...))`; with `separator=""`, the 32 hex
    digits `uuid7_hex` makes), drawn for a batch (a producer's invoke-batch, a write's queued messages) with one
    clock read and one take of the pool for all of them rather than one each, and formatted from the random
    bytes' hex directly rather than through an integer.

    They share the millisecond (as ids drawn one by one within it would), each with its own 74 random bits."""
    stamp = (time.time_ns() // 1_000_000).to_bytes(6).hex()
    head = f"{stamp[:8]}{separator}{stamp[8:]}{separator}7"
    digits = _POOL.take(10 * count).hex()  # 20 digits an id: 12 + 2 + 60 random bits used, 6 left unused
    variant, sep = _VARIANT_DIGIT, separator
    return [
        f"{head}{digits[i : i + 3]}{sep}{variant[digits[i + 3]]}{digits[i + 4 : i + 7]}{sep}{digits[i + 7 : i + 19]}"
        for i in range(0, 20 * count, 20)
    ]
