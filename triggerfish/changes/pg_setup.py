"""What change capture needs of a PostgreSQL server, checked, and the replication slot it reads, made or dropped.

    table = await prepare(conn, TableName("public", "orders"), slot="tf_shop_ship_1a2b3c4d", view="NEW_IMAGE")
    table.keys, table.prefix      # ("id",), "table public.orders:"
    await drop_slot(conn, "tf_shop_ship_1a2b3c4d")

Every check fails with a SetupError that says what is wrong and the SQL that
fixes it, in the order a new user meets them: `wal_level` must be `logical`,
the role needs REPLICATION, the table must exist, be a plain table and have a
primary key (the records' `Keys`), its REPLICA IDENTITY must log the key (and
every column when the stream view wants the old image), and a free replication
slot must be left (`max_replication_slots`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

from triggerfish.changes.pg_records import ViewType
from triggerfish.errors import DeclarationError

logger = logging.getLogger("triggerfish.changes")

#: The output plugin every slot uses (docs/pg-changes.md says why).
PLUGIN = "test_decoding"

#: Slots whose unbounded WAL retention was already warned about in this process (once is enough).
_WARNED: set[str] = set()

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


class SetupError(DeclarationError):
    """The database is not ready for change capture; the message names the fix."""


@dataclass(frozen=True, slots=True)
class TableName:
    schema: str
    table: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What the reader needs of the table: its primary key columns, and how test_decoding's lines about it start."""

    keys: tuple[str, ...]
    prefix: str
    database: str
    #: The server's max_slot_wal_keep_size as it shows it ("-1": unlimited: a stalled slot can fill the disk).
    wal_keep: str


def parse_table(text: object) -> TableName:
    """`public.orders` or `orders` (schema public); ValueError naming the form for anything else."""
    if not isinstance(text, str):
        raise ValueError(f"table must be a string such as 'public.orders', not {text!r}")
    schema, dot, table = text.partition(".") if "." in text else ("public", ".", text)
    if not (dot and _NAME.match(schema) and _NAME.match(table) and len(schema) < 64 and len(table) < 64):
        raise ValueError(
            f"table must be 'schema.table' or 'table' of letters, digits, '_' and '$' (as public.orders), not {text!r}"
        )
    return TableName(schema, table)


async def prepare(conn: Any, name: TableName, *, slot: str, view: ViewType) -> TableInfo:
    """Check the server, role and table (SetupError naming the fix), and make the slot if it does not exist."""
    server = await _one(
        conn,
        "SELECT current_setting('wal_level'), current_user, current_database(),"
        " (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),"
        " current_setting('max_replication_slots')::int, current_setting('max_slot_wal_keep_size')",
    )
    wal_level, role, database, replication, max_slots, keep = server
    if wal_level != "logical":
        raise SetupError(
            f"PostgreSQL's wal_level is {wal_level!r}; change capture needs 'logical': run"
            " ALTER SYSTEM SET wal_level = logical; as a superuser, then restart PostgreSQL"
        )
    if not replication:
        raise SetupError(
            f"the role {role!r} may not read replication slots: run ALTER ROLE {_quoted(role)} REPLICATION;"
            " as a superuser (or connect as a role that has it)"
        )
    table = await _one(
        conn,
        "SELECT c.oid, c.relkind, c.relreplident,"
        " 'table ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ':'"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (name.schema, name.table),
    )
    if table is None:
        raise SetupError(
            f"the table {name} does not exist in the database {database!r}: create it, or name an existing"
            " table (schema.table)"
        )
    oid, kind, identity, prefix = table
    if kind != "r":
        what = {"p": "a partitioned table (its rows are logged under each partition's name)", "v": "a view"}
        raise SetupError(f"{name} is {what.get(kind, f'not a plain table (relkind {kind!r})')}: capture a plain table")
    rows = await (
        await conn.execute(
            "SELECT a.attname FROM pg_index i"
            " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
            " WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.n",
            (oid,),
        )
    ).fetchall()
    keys = tuple(row[0] for row in rows)
    if not keys:
        raise SetupError(
            f"the table {name} has no primary key, which records need as their Keys (and which orders changes per"
            f" row): add one, e.g. ALTER TABLE {name} ADD PRIMARY KEY (id);"
        )
    if identity in ("n", "i"):
        said = "NOTHING" if identity == "n" else "USING INDEX"
        raise SetupError(
            f"the table {name} has REPLICA IDENTITY {said}, so a DELETE does not log the primary key: run"
            f" ALTER TABLE {name} REPLICA IDENTITY DEFAULT; (or FULL, for old images)"
        )
    if view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") and identity != "f":
        raise SetupError(
            f"stream_view_type {view} needs the old row, which PostgreSQL logs only under REPLICA IDENTITY FULL"
            f" (the table {name} has DEFAULT: the key only): run ALTER TABLE {name} REPLICA IDENTITY FULL;"
            " or use stream_view_type='NEW_IMAGE'"
        )
    await _ensure_slot(conn, slot, database, max_slots)
    if keep == "-1" and slot not in _WARNED:
        _WARNED.add(slot)
        logger.warning(
            "PostgreSQL's max_slot_wal_keep_size is -1 (unlimited): if slot %s stalls (a failing function that"
            " retries forever, a platform that stays down) the server keeps WAL for it until its disk fills;"
            " set a bound, e.g. ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'; SELECT pg_reload_conf();",
            slot,
        )
    return TableInfo(keys, prefix, database, keep)


async def _ensure_slot(conn: Any, slot: str, database: str, max_slots: int) -> None:
    found = await _one(
        conn,
        "SELECT plugin, database, wal_status, confirmed_flush_lsn IS NULL FROM pg_replication_slots"
        " WHERE slot_name = %s",
        (slot,),
    )
    if found is not None:
        plugin, where, wal_status, making = found
        if plugin != PLUGIN or where != database:
            raise SetupError(
                f"a replication slot named {slot!r} exists for {plugin or 'physical replication'} on the database"
                f" {where!r}, not for {PLUGIN} on {database!r}: drop it with SELECT pg_drop_replication_slot("
                f"'{slot}'); if nothing else uses it"
            )
        if wal_status == "lost":
            raise SetupError(
                f"the replication slot {slot!r} lost WAL it needed (max_slot_wal_keep_size was reached while it"
                f" stalled), so changes were missed: drop it with SELECT pg_drop_replication_slot('{slot}'); to"
                " start again from now"
            )
        if making:
            await _until_made(conn, slot)
        return
    used = await _one(conn, "SELECT count(*), string_agg(slot_name, ', ') FROM pg_replication_slots")
    if used is not None and used[0] >= max_slots:
        raise _slots_exhausted(max_slots, used[1])
    import psycopg

    try:
        await conn.execute("SELECT pg_create_logical_replication_slot(%s, %s)", (slot, PLUGIN))
    except psycopg.errors.DuplicateObject:
        await _until_made(conn, slot)  # another node makes it
        return
    except psycopg.errors.ConfigurationLimitExceeded:
        raise _slots_exhausted(max_slots, None) from None
    logger.info("made the replication slot %s (%s) on %s", slot, PLUGIN, database)


async def _until_made(conn: Any, slot: str) -> None:
    """Wait while another session makes `slot`: it is listed from the start, but decodes only what commits after
    its consistent point (once the transactions running when it began have ended), which gives it a position."""
    while True:
        row = await _one(
            conn, "SELECT confirmed_flush_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        )
        if row is None or row[0]:
            return  # made, or its making failed (the reader then finds no slot, and makes it)
        await asyncio.sleep(0.1)


def _slots_exhausted(max_slots: int, names: str | None) -> SetupError:
    return SetupError(
        f"every replication slot is in use (max_replication_slots = {max_slots}"
        f"{f': {names}' if names else ''}): drop one no longer needed with SELECT pg_drop_replication_slot('name');"
        " or raise it with ALTER SYSTEM SET max_replication_slots = 20; and restart PostgreSQL"
    )


async def drop_slot(conn: Any, slot: str) -> bool:
    """Drop the slot if it exists, so the server stops keeping WAL for it; whether it existed."""
    found = await _one(conn, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    if found is None:
        return False
    await conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    logger.info("dropped the replication slot %s", slot)
    return True


async def slot_lag(conn: Any, slot: str) -> tuple[int, str] | None:
    """How many bytes of WAL the server keeps for the slot beyond what it confirmed, and its wal_status."""
    row = await _one(
        conn,
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, wal_status"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    )
    return None if row is None else (int(row[0] or 0), str(row[1]))


async def _one(conn: Any, query: str, params: tuple[Any, ...] = ()) -> Any:
    cursor = await conn.execute(query, params)
    return await cursor.fetchone()


def _quoted(name: str) -> str:
    return name if _NAME.match(name) and name == name.lower() else '"' + name.replace('"', '""') + '"'
