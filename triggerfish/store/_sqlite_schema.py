"""The SQLite store's file: its tables, its pragmas, its migrations, and opening it safely.

The schema version lives in the file (`PRAGMA user_version`), so an older
Triggerfish refuses a file a newer one wrote instead of misreading it, and an
older file is brought up to date by running the migrations it has not had,
in one transaction, when it is opened.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from triggerfish.errors import SchemaVersionError, StoreError
from triggerfish.store import _sqlite_binding

SCHEMA_VERSION = 4

#: How long a connection waits for another process's lock before it fails.
BUSY_TIMEOUT_MS = 10_000

_VERSION_1 = """
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

# Consumer groups: a group's position and the highest offset it ever claimed, and its claimed
# ranges (they tile the stream from 1; committed ones behind the position are deleted).
_VERSION_2 = """
CREATE TABLE IF NOT EXISTS log_groups (
    stream TEXT NOT NULL,
    grp TEXT NOT NULL,
    position INTEGER NOT NULL,
    claimed INTEGER NOT NULL,
    PRIMARY KEY (stream, grp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_claims (
    stream TEXT NOT NULL,
    grp TEXT NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    token TEXT NOT NULL,
    expires_at REAL NOT NULL,
    committed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (stream, grp, first)
) WITHOUT ROWID;
"""

# No table changes: version 3 marks what the platform stores in them. An invocation attempt's entry in the trace
# index is a pointer to its record, and its kept input rides in the record's key-value row (docs/architecture.md,
# rec13). A Triggerfish that knows only version 2 would fail on both forms, so it must refuse the file, as it refuses
# any newer one, instead of opening it.
_VERSION_3 = """
-- version 3: records' trace pointers and kept inputs (no table changes)
"""

# Log records that can be found by key (`EventLog.find`): up to two keys a record, each column with an index of its
# own that holds only the records that have one (partial), so appends without keys cost what they did. An invocation
# attempt's record is stored once, as its log row found by its request id and its span (docs/architecture.md, rec14);
# a Triggerfish that knows only version 3 would find neither, so it must refuse the file.
_VERSION_4 = """
ALTER TABLE log_records ADD COLUMN key1 TEXT;
ALTER TABLE log_records ADD COLUMN key2 TEXT;
CREATE INDEX IF NOT EXISTS log_by_key1 ON log_records (key1) WHERE key1 IS NOT NULL;
CREATE INDEX IF NOT EXISTS log_by_key2 ON log_records (key2) WHERE key2 IS NOT NULL;
"""

#: The script that takes a file from version N - 1 to N.
MIGRATIONS: dict[int, str] = {1: _VERSION_1, 2: _VERSION_2, 3: _VERSION_3, 4: _VERSION_4}


def connect(path: str, *, migrate: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) the store file at `path`, with the schema in place.

    Raises StoreError naming the path when the file is not a SQLite database or
    cannot be opened, SchemaVersionError when it was written by a newer
    Triggerfish, or needs migrating and `migrate` is False.
    """
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory for the store file {path}: {exc}") from exc
    _sqlite_binding.install()
    try:
        # isolation_level=None: transactions are ours (BEGIN IMMEDIATE ... COMMIT), never implicit.
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store file {path}: {exc}") from exc
    try:
        _prepare(connection, path, migrate)
    except BaseException:
        connection.close()
        raise
    return connection


def _prepare(connection: sqlite3.Connection, path: str, migrate: bool) -> None:
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
        raise SchemaVersionError(
            f"{path} was written by a newer Triggerfish (store schema {version}, this one knows up to"
            f" {SCHEMA_VERSION}); upgrade Triggerfish to open it"
        )
    if version < SCHEMA_VERSION:
        if not migrate:
            raise SchemaVersionError(
                f"{path} has store schema {version} and this Triggerfish needs {SCHEMA_VERSION}; run"
                f" `triggerfish store migrate --store sqlite:///{path}` first"
            )
        steps = "".join(MIGRATIONS[v] for v in range(version + 1, SCHEMA_VERSION + 1))
        try:
            # One script, one transaction: executescript would commit a transaction begun outside it.
            connection.executescript(f"BEGIN IMMEDIATE;{steps}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise StoreError(f"cannot migrate the store's tables in {path} to schema {SCHEMA_VERSION}: {exc}") from exc
