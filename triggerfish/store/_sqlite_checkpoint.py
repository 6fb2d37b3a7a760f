"""Checkpointing the SQLite store's write-ahead log in a thread of its own, never in the writer's commits.

SQLite's default copies the WAL into the database file whenever a commit
leaves it over 1,000 pages, in that commit: the writer thread stops for the
copy and a sync of the database file, and every caller waiting on the
writer waits with it (the tail of publish-to-handler latency under load).
The store turns that off on the writer's connection and instead runs a
PASSIVE checkpoint from this thread's own connection every INTERVAL seconds:
it copies what it can without waiting for readers or writers, and the writer
carries on appending meanwhile. Once everything in the log is copied and no
reader needs it, the writer starts the log again from its beginning, so it
does not grow without bound.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from triggerfish import cores

logger = logging.getLogger("triggerfish.store")

#: Seconds between two checkpoints.
INTERVAL = 0.5


class Checkpointer:
    """A thread that checkpoints the WAL of the store file at `path` every `interval` seconds until `stop()`."""

    def __init__(self, path: str, *, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"triggerfish-store-checkpoint:{path}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (after its checkpoint in progress, if any) and wait for it."""
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        # A checkpoint is SQLite copying pages, without the GIL: on a core of its own where there is one, not on the
        # event loop's (`triggerfish.cores`).
        cores.release_thread()
        try:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            logger.exception("cannot open %s to checkpoint it; SQLite's own checkpoints are off", self.path)
            return
        try:
            while not self._stopping.wait(self.interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy or failing disk: the log waits for the next one
                    logger.warning("checkpointing %s failed: %s; trying again in %g s", self.path, exc, self.interval)
        finally:
            connection.close()
