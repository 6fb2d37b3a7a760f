"""The SQLite store's version counter, read once and written once per writer transaction.

Every record version comes from one counter for the whole store (the `meta`
row `kv_version`): a version is never handed out twice, so a compare-and-set
has no ABA problem, and versions rise. Bumping that row once per
`Store.atomic` cost a statement per write; a writer transaction holds a dozen
writes under load (group commit), so the counter is instead read at the
transaction's first put and written back once, just before its COMMIT.

Why that keeps versions unique and rising:

- The writer's transaction is `BEGIN IMMEDIATE`: it holds the file's write lock
  from its start, so no other process (or connection) can take versions
  between the read and the write-back.
- The write-back happens outside every operation's savepoint, so rolling one
  operation back never takes back the counter: the versions that operation
  took are skipped, never handed out again (they were never stored either).
- A transaction rolled back as a whole (the writer reruns a batch, a failed
  COMMIT) takes back the write-back too; the next transaction reads the row
  afresh, and the versions of the rolled-back one were never stored.
"""

from __future__ import annotations

import sqlite3


class VersionCounter:
    """The counter as the writer's current transaction sees it (the writer thread only: no lock)."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        #: The next version to hand out; 0 until the transaction's first put has read the row.
        self._next = 0

    def take(self, c: sqlite3.Connection, count: int) -> int:
        """`count` fresh versions for the current transaction; the first of them."""
        first = self._next
        if not first:
            (last,) = c.execute("SELECT value FROM meta WHERE name = 'kv_version'").fetchone()
            first = int(last) + 1
        self._next = first + count
        return first

    def begin(self) -> None:
        """A transaction begins: what an earlier one read may be stale (another process, a rollback)."""
        self._next = 0

    def before_commit(self, c: sqlite3.Connection) -> None:
        """Store the last version handed out, if this transaction took any, in the transaction itself."""
        if self._next:
            c.execute("UPDATE meta SET value = ? WHERE name = 'kv_version'", (self._next - 1,))
            self._next = 0
