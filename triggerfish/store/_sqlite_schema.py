"""The SQLite store's file: its tables, its pragmas, and opening it safely.

The schema version lives in the file (`PRAGMA user_version`), so an older
Triggerfish refuses a file a newer one wrote instead of misreading it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from triggerfish.errors import StoreError

SCHEMA_VERSION = 1

#: How long a connection waits for another process's lock before it fails.
BUSY_TIMEOUT_MS = 10_000

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (name, value) VALUES ('kv_version', 0);

-- One row per stream ever appended to; next_offset survives trimming, so offsets are never reused.
CREATE TABLE IF NOT EXISTS streams (
    name TEXT PRIMARY KEY,
    next_offset INTEGER NOT NULL,
    last_time REAL NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log_records (
    stream TEXT NOT NULL,
    "offset" INTEGER NOT NULL,
    time REAL NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS log_by_offset ON log_records (stream, "offset");

-- config is a JSON object of QueueConfig fields; NULL means the defaults.
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    config TEXT
);
-- seq (the rowid) is the send order. ready = 1 marks receive candidates: every message of a
-- standard queue, only each group's head in a FIFO queue (one in flight per group).
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    body BLOB NOT NULL,
    attributes TEXT,
    grp TEXT,
    dedup_id TEXT,
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_received_at REAL,
    receipt TEXT,
    ready INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_id ON messages (queue, id);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at, seq) WHERE ready = 1;
CREATE INDEX IF NOT EXISTS messages_by_group ON messages (queue, grp, seq) WHERE grp IS NOT NULL;
CREATE TABLE IF NOT EXISTS dedup (
    queue TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (queue, dedup_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_expiry ON dedup (expires_at);

CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    version INTEGER NOT NULL,
    expires_at REAL,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX IF NOT EXISTS kv_by_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;
"""


def connect(path: str) -> sqlite3.Connection:
    """Open (creating if needed) the store file at `path`, with the schema in place.

    Raises StoreError naming the path when the file is not a SQLite database,
    was written by a newer Triggerfish, or cannot be opened.
    """
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory for the store file {path}: {exc}") from exc
    try:
        # isolation_level=None: transactions are ours (BEGIN IMMEDIATE ... COMMIT), never implicit.
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store file {path}: {exc}") from exc
    try:
        _prepare(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


def _prepare(connection: sqlite3.Connection, path: str) -> None:
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        connection.execute("PRAGMA synchronous = FULL")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path} is not a Triggerfish store (SQLite says: {exc}); point the store URL at another file"
        ) from exc
    if mode.lower() != "wal":
        raise StoreError(f"{path}: SQLite refused write-ahead logging (journal_mode is {mode}); use a local disk")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer Triggerfish (store schema {version}, this one knows up to"
            f" {SCHEMA_VERSION}); upgrade Triggerfish to open it"
        )
    if version < SCHEMA_VERSION:
        try:
            # One script, one transaction: executescript would commit a transaction begun outside it.
            connection.executescript(f"BEGIN IMMEDIATE;{_TABLES}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise StoreError(f"cannot create the store's tables in {path}: {exc}") from exc
