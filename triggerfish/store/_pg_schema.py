"""The PostgreSQL store's schema: versioned migrations, run under an advisory lock.

The version lives in the schema's `meta` table. Opening a store migrates by
default; with `migrate=False` (or on a node that is older than the schema) a
mismatch is refused with SchemaVersionError naming both versions, so a node
never runs against tables it does not know.

Table settings keep dead tuples in check: every receive, acknowledgement and
append updates or deletes rows, so the hot tables leave free room in each page
(`fillfactor`) for updates that touch no index (HOT), and autovacuum visits
them after a fixed number of dead rows rather than a fraction of the table.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from psycopg import AsyncConnection, sql

from triggerfish.errors import SchemaVersionError, UnknownStoreURLError

SCHEMA_VERSION = 5

#: A schema name: lower-case so that it needs no quoting anywhere.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Autovacuum after this many dead rows, whatever the table's size: queues churn, logs do not.
_CHURN = "autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_cost_delay = 0"

_VERSION_1 = f"""
CREATE TABLE meta (name text PRIMARY KEY, value bigint NOT NULL);
CREATE SEQUENCE kv_version;

CREATE TABLE streams (
    name text COLLATE "C" PRIMARY KEY,
    next_offset bigint NOT NULL,
    last_time double precision NOT NULL,
    bytes bigint NOT NULL
) WITH (fillfactor = 50, {_CHURN});
CREATE TABLE log_records (
    stream text COLLATE "C" NOT NULL,
    "offset" bigint NOT NULL,
    time double precision NOT NULL,
    size integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (stream, "offset")
);
CREATE INDEX log_by_time ON log_records (stream, time, "offset");

CREATE TABLE log_groups (
    stream text COLLATE "C" NOT NULL,
    grp text COLLATE "C" NOT NULL,
    position bigint NOT NULL,
    claimed bigint NOT NULL,
    PRIMARY KEY (stream, grp)
) WITH (fillfactor = 50, {_CHURN});
CREATE TABLE log_claims (
    stream text COLLATE "C" NOT NULL,
    grp text COLLATE "C" NOT NULL,
    first bigint NOT NULL,
    last bigint NOT NULL,
    token text NOT NULL,
    expires_at double precision NOT NULL,
    committed boolean NOT NULL DEFAULT false,
    PRIMARY KEY (stream, grp, first)
) WITH (fillfactor = 70, {_CHURN});

CREATE TABLE queues (name text COLLATE "C" PRIMARY KEY, config text);
CREATE TABLE messages (
    seq bigserial PRIMARY KEY,
    queue text COLLATE "C" NOT NULL,
    id text NOT NULL,
    body bytea NOT NULL,
    attributes text,
    grp text COLLATE "C",
    dedup_id text,
    sent_at double precision NOT NULL,
    visible_at double precision NOT NULL,
    receive_count integer NOT NULL DEFAULT 0,
    first_received_at double precision,
    receipt text,
    ready boolean NOT NULL
) WITH (fillfactor = 70, {_CHURN});
CREATE UNIQUE INDEX messages_by_id ON messages (queue, id);
CREATE INDEX messages_ready ON messages (queue, visible_at, seq) WHERE ready;
CREATE INDEX messages_by_group ON messages (queue, grp, seq) WHERE grp IS NOT NULL;
CREATE TABLE dedup (
    queue text COLLATE "C" NOT NULL,
    dedup_id text NOT NULL,
    message_id text NOT NULL,
    expires_at double precision NOT NULL,
    PRIMARY KEY (queue, dedup_id)
) WITH ({_CHURN});
CREATE INDEX dedup_by_expiry ON dedup (expires_at);

CREATE TABLE kv (
    namespace text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value bytea NOT NULL,
    version bigint NOT NULL,
    expires_at double precision,
    PRIMARY KEY (namespace, key)
) WITH (fillfactor = 80, {_CHURN});
CREATE INDEX kv_by_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;
"""

# Objects' bytes (triggerfish.objects.pg_blobs): a row per blob, its bytes in chunks of at most a MiB keyed by
# their first byte's offset. The chunks are stored uncompressed out of line (EXTERNAL): most large objects are
# compressed already (images, video, archives), and a range read then fetches only the slices it needs.
_VERSION_2 = """
CREATE TABLE blobs (
    id text COLLATE "C" PRIMARY KEY,
    size bigint,
    touched double precision NOT NULL,
    removed double precision
);
CREATE INDEX blobs_unfinished ON blobs (touched) WHERE size IS NULL;
CREATE INDEX blobs_removed ON blobs (removed) WHERE removed IS NOT NULL;
CREATE TABLE blob_chunks (
    blob_id text COLLATE "C" NOT NULL,
    start bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (blob_id, start)
);
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
"""

# A message looked up by its id (acknowledgements, releases, extensions) through an index that starts with the id.
# Version 1's started with the queue, and a lookup of a batch of ids planned without statistics (a new schema,
# until autovacuum's first ANALYZE) took `queue = ...` alone to the index, judging it selective, and read every
# message of the queue to filter out the batch (15 ms for 50 acknowledgements behind 10,000 messages). The queue
# comes second: the same uniqueness, and nothing else looked messages up by queue and id prefix but `purge` and
# `stats`, which read all of a queue's messages anyway. The rows stay as they are: messages in flight keep their
# receipts and leases.
_VERSION_3 = """
CREATE UNIQUE INDEX messages_by_id_first ON messages (id, queue);
DROP INDEX messages_by_id;
ALTER INDEX messages_by_id_first RENAME TO messages_by_id;
"""

# No table changes: version 4 marks what the platform stores in them. An invocation attempt's entry in the trace
# index is a pointer to its record, and its kept input rides in the record's key-value row (docs/architecture.md,
# rec13). A node that knows only version 3 would fail on both forms, so it must refuse to start on this schema (as
# on any newer one) instead of serving beside the nodes that write them.
_VERSION_4 = """
SELECT 'version 4: records'' trace pointers and kept inputs (no table changes)';
"""

# Log records that can be found by key (`EventLog.find`): up to two keys a record, each column with an index of its
# own that holds only the records that have one (partial), so appends without keys cost what they did. An invocation
# attempt's record is stored once, as its log row found by its request id and its span (docs/architecture.md, rec14);
# a node that knows only version 4 would find neither, so it must refuse to start on this schema.
_VERSION_5 = """
ALTER TABLE log_records ADD COLUMN key1 text COLLATE "C", ADD COLUMN key2 text COLLATE "C";
CREATE INDEX log_by_key1 ON log_records (key1) WHERE key1 IS NOT NULL;
CREATE INDEX log_by_key2 ON log_records (key2) WHERE key2 IS NOT NULL;
"""

#: The statements that take a schema from version N - 1 to N.
MIGRATIONS: dict[int, str] = {1: _VERSION_1, 2: _VERSION_2, 3: _VERSION_3, 4: _VERSION_4, 5: _VERSION_5}


def check_schema_name(url: str, schema: str) -> str:
    if not SCHEMA_NAME.fullmatch(schema):
        raise UnknownStoreURLError(
            f"store URL {url!r}: schema {schema!r} must be 1 to 63 lower-case letters, digits and _,"
            " starting with a letter or _"
        )
    return schema


async def current_version(conn: AsyncConnection[Any], schema: str) -> int:
    """The schema's version: 0 when it has no store tables yet."""
    cursor = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.meta",))
    row = await cursor.fetchone()
    if row is None or not row[0]:
        return 0
    cursor = await conn.execute(
        sql.SQL("SELECT value FROM {}.meta WHERE name = 'schema_version'").format(sql.Identifier(schema))
    )
    found = await cursor.fetchone()
    return 0 if found is None else int(found[0])


def _lock_key(schema: str) -> int:
    # A stable number per schema: nodes migrating different schemas do not wait for each other.
    return int.from_bytes(hashlib.sha256(f"triggerfish:{schema}".encode()).digest()[:8], "big", signed=True)


async def migrate(conn: AsyncConnection[Any], schema: str, *, allowed: bool, where: str) -> int:
    """Bring `schema` to SCHEMA_VERSION (when `allowed`), or check it is there; returns the version.

    Runs in one transaction under an advisory lock, so nodes starting together migrate once.
    Raises SchemaVersionError for a newer schema, or an older one when not `allowed`.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        version = await current_version(conn, schema)
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{where}: the store schema {schema!r} is at version {version}, newer than the {SCHEMA_VERSION}"
                " this Triggerfish knows; upgrade Triggerfish on this node"
            )
        if version == SCHEMA_VERSION:
            return version
        if not allowed:
            raise SchemaVersionError(
                f"{where}: the store schema {schema!r} is at version {version} and this Triggerfish needs"
                f" {SCHEMA_VERSION}; run `triggerfish store migrate --store URL` first"
            )
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        await conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        for step in range(version + 1, SCHEMA_VERSION + 1):
            await conn.execute(MIGRATIONS[step].encode())
        await conn.execute(
            "INSERT INTO meta (name, value) VALUES ('schema_version', %s)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (SCHEMA_VERSION,),
        )
        return SCHEMA_VERSION
