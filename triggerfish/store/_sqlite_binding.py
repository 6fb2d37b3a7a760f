"""`bytes` and `None` bound to the SQLite store's statements without the sqlite3 module's failed adaptation.

Python's sqlite3 (3.11 and 3.12) binds an exact `int`, `float`, `str` or `bytearray` as it is, but looks for
an adapter for every other value first, `bytes` and `None` included: its registry, then the `__adapt__` of its
`PrepareProtocol` type, whose lookup on a type formats an AttributeError message only to drop it. A queued
invocation's row binds its body and three or four NULLs so; that search was a quarter of the writer thread's
instructions for each message an invoke-batch queued (`benchmarks.enqueue --instructions`). An adapter in the
registry for exactly these two types ends the search at its first step, and hands the value back unchanged,
so what SQLite stores is what it stored before (a BLOB, a NULL).

The registry is the process's: an adapter someone else registered for either type is left in place.
"""

from __future__ import annotations

import sqlite3


def _unchanged(value: None) -> None:
    return value


def install() -> None:
    """Register the adapters (idempotent; never replaces an adapter registered before)."""
    if (bytes, sqlite3.PrepareProtocol) not in sqlite3.adapters:
        sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b itself for an exact bytes, in C
    if (type(None), sqlite3.PrepareProtocol) not in sqlite3.adapters:
        sqlite3.register_adapter(type(None), _unchanged)
