"""Every PostgreSQL change capture of one app on this node: readers started, restarted, stopped, slots dropped.

    changes = PgChanges(store, platform, publisher, app="shop")
    await changes.update(specs)   # checks each database (SetupError naming the fix), then reads
    changes.status()              # per function: slot, lag in bytes, records handled, last error
    await changes.stop()          # readers stop; slots stay, so nothing written meanwhile is missed

A function's database is named by an environment variable (`env:ORDERS_DB`),
resolved here on the node, so the URL and its password stay out of code and
bundles, and each stage or machine points at its own database. Slots are named
by app and function (`names.pg_change_slot`) and remembered in the store
(`names.PG_SLOTS_NAMESPACE`): when an update (a deploy, a reload, a restart
with new code) no longer declares a capture, its slot is dropped, since a slot
nobody reads keeps WAL on the user's server forever. Stopping the platform
keeps the slots: changes made while it is down are read when it is back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from triggerfish.bus.publisher import Publisher
from triggerfish.changes.consumer import STREAM_RETENTION
from triggerfish.changes.pg_capture import Capture, SlotReader
from triggerfish.changes.pg_partitions import SlotMover
from triggerfish.changes.pg_records import ViewType
from triggerfish.changes.pg_setup import drop_slot, parse_table
from triggerfish.errors import DeclarationError
from triggerfish.model import FunctionSpec, PgChangeTrigger
from triggerfish.names import CHANGE_CHECKPOINTS_NAMESPACE, PG_SLOTS_NAMESPACE, pg_capture_checkpoint, pg_change_slot
from triggerfish.retry import RetryPolicy
from triggerfish.store import Store
from triggerfish.streams.batches import BatchOptions, filter_texts
from triggerfish.streams.consumer import DEFAULT_RETRY_POLICY, StreamInvoker

logger = logging.getLogger("triggerfish.changes")

_EVENTS = {"insert": "INSERT", "modify": "MODIFY", "remove": "REMOVE"}


def pg_triggers(specs: Mapping[str, FunctionSpec]) -> list[tuple[FunctionSpec, PgChangeTrigger]]:
    """Every function's PostgreSQL change triggers; DeclarationError for a function with two (one slot each)."""
    found: list[tuple[FunctionSpec, PgChangeTrigger]] = []
    for spec in specs.values():
        mine = [t for t in spec.triggers if isinstance(t, PgChangeTrigger)]
        if len(mine) > 1:
            raise DeclarationError(
                f"function {spec.name!r} captures {len(mine)} PostgreSQL tables; declare one per function"
                " (each reads its own replication slot)"
            )
        found.extend((spec, trigger) for trigger in mine)
    return found


class PgChanges:
    """See the module docstring."""

    def __init__(
        self,
        store: Store,
        invoker: StreamInvoker,
        publisher: Publisher,
        *,
        app: str,
        environ: Mapping[str, str] | None = None,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        clock: Callable[[], float] = time.time,
        poll_interval: float | None = None,
        node: str | None = None,
    ) -> None:
        self.store = store
        self.invoker = invoker
        self.publisher = publisher
        self.app = app
        self.environ = os.environ if environ is None else environ
        self.retry_policy = retry_policy
        self.clock = clock
        self.poll_interval = poll_interval
        #: Names this node to the partitions' consumers (`parallelization` > 1), across restarts.
        self.node = node or socket.gethostname()
        self.readers: dict[str, SlotReader] = {}
        #: `triggerfish.testing`'s captures: run by `deliver_due`, their slots made at start and dropped at stop.
        self._due: dict[str, tuple[SlotReader, Any]] = {}

    @property
    def active(self) -> bool:
        return bool(self.readers)

    def captures(self, specs: Mapping[str, FunctionSpec]) -> list[Capture]:
        """The captures `specs` declare, their databases resolved; DeclarationError for an unset variable."""
        return [self._capture(spec, trigger) for spec, trigger in pg_triggers(specs)]

    async def prepare(self, specs: Mapping[str, FunctionSpec]) -> list[Capture]:
        """Check each new or changed capture against its database and make its slot, starting nothing: what a
        reload does before it switches (a SetupError then leaves the old version serving). The captures."""
        fresh = [
            capture
            for capture in self.captures(specs)
            if capture.function not in self.readers or self.readers[capture.function].capture != capture
        ]
        for capture in fresh:
            conn = await _connected(self._reader(capture))
            await conn.close()
        return fresh

    async def update(self, specs: Mapping[str, FunctionSpec]) -> None:
        """Read exactly the captures `specs` declare. Each new or changed one is checked against its database
        first (a SetupError, naming the fix, leaves everything running as it was); then readers switch, and
        the slots of captures no longer declared are dropped."""
        wanted = {capture.function: capture for capture in self.captures(specs)}
        fresh = await self.prepare(specs)
        for name in [n for n, reader in self.readers.items() if wanted.get(n) != reader.capture]:
            await self.readers.pop(name).stop()
        for capture in fresh:
            reader = self.readers[capture.function] = self._reader(capture)
            reader.start()
        await self._forget_others(wanted.values())

    async def stop(self) -> None:
        """Stop reading (a batch running finishes first); the slots stay (but those of `configure`'s captures)."""
        for reader in self.readers.values():
            await reader.stop()
        self.readers.clear()
        await self._forget_due()

    async def configure(self, specs: Mapping[str, FunctionSpec]) -> None:
        """Capture for `triggerfish.testing`: each capture whose variable is set here gets a fresh slot (changes
        from now on), run by `deliver_due` (drain) instead of in the background, and dropped at `stop`. A
        capture whose variable is not set does not run (a test without that database)."""
        await self._forget_due()
        for spec, trigger in pg_triggers(specs):
            try:
                capture = self._capture(spec, trigger)
            except DeclarationError as exc:
                logger.info("%s does not run here: %s", spec.name, exc)
                continue
            reader = self._reader(capture)
            self._due[capture.function] = (reader, await _connected(reader, fresh=True))

    async def deliver_due(self) -> int:
        """Run what is new in each `configure`d capture's slot, retries without waiting; how many records ran."""
        done = 0
        for reader, conn in self._due.values():
            done += await reader.run_due(conn)
        return done

    async def trim(self, *, max_age: float = STREAM_RETENTION) -> int:
        """Drop records older than `max_age` (a day) that the partitions of `parallelization` > 1 captures handled."""
        return sum([await reader.trim(max_age=max_age) for reader in self.readers.values()])

    async def _forget_due(self) -> None:
        for reader, conn in self._due.values():
            try:
                await drop_slot(conn, reader.capture.slot)
            except Exception as exc:
                logger.warning("dropping the test slot %s failed: %s", reader.capture.slot, exc)
            with contextlib.suppress(Exception):
                await conn.close()
        self._due.clear()

    def status(self) -> dict[str, Any]:
        """Per function: what it reads and how far behind the slot is (`triggerfish status`, the metrics)."""
        return {
            name: {
                "source": reader.capture.source,
                "table": str(reader.capture.table),
                "slot": reader.capture.slot,
                "reading": reader.state.reading,
                "lag_bytes": reader.state.lag_bytes,
                "wal_status": reader.state.wal_status,
                "backlog": reader.state.backlog,
                "records": reader.state.records,
                "partitions": reader.capture.partitions,
                "batches": reader.state.batches,
                "error": reader.state.last_error,
            }
            for name, reader in sorted(self.readers.items())
        }

    def _reader(self, capture: Capture) -> SlotReader:
        options: dict[str, Any] = {} if self.poll_interval is None else {"poll_interval": self.poll_interval}
        if capture.partitions > 1:
            options["node"] = self.node
        kind = SlotMover if capture.partitions > 1 else SlotReader
        return kind(
            capture,
            self.invoker,
            self.store,
            self.publisher,
            app=self.app,
            retry_policy=self.retry_policy,
            clock=self.clock,
            **options,
        )

    def _capture(self, spec: FunctionSpec, trigger: PgChangeTrigger) -> Capture:
        return Capture(
            function=spec.name,
            source=trigger.source,
            url=self._url(spec.name, trigger.source),
            table=parse_table(trigger.table),
            slot=pg_change_slot(self.app, spec.name),
            view=_view(trigger.stream_view_type),
            events=tuple(_EVENTS[op] for op in trigger.ops),
            batch_size=trigger.stream_settings.batch_size,
            batch_window=trigger.stream_settings.batch_window,
            options=BatchOptions.of(trigger.stream_settings),
            timeout=spec.settings.timeout,
            on_failure=spec.settings.on_failure,
            filters=filter_texts(trigger.stream_settings),
            partitions=trigger.stream_settings.parallelization,
        )

    def _url(self, function: str, source: str) -> str:
        variable = source.removeprefix("env:")
        url = self.environ.get(variable)
        if not url:
            raise DeclarationError(
                f"function {function!r} captures changes from {source}, but the environment variable {variable} is"
                " not set: set it to the database's URL, as postgresql://user:password@host:5432/dbname"
            )
        if not url.startswith(("postgresql://", "postgres://")):
            raise DeclarationError(
                f"the environment variable {variable} (function {function!r}) must hold a postgresql:// URL, not"
                f" one starting {url.split(':', 1)[0]!r}"
            )
        return url

    async def _forget_others(self, wanted: Sequence[Capture] | Any) -> None:
        """Remember the slots read now; drop those of captures no longer declared (their database permitting)."""
        kv = self.store.kv
        keep = {capture.slot for capture in wanted}
        for capture in wanted:
            memo = {"app": self.app, "function": capture.function, "source": capture.source}
            current = await kv.get(PG_SLOTS_NAMESPACE, capture.slot)
            if current is None or orjson.loads(current.value) != memo:
                await kv.put(PG_SLOTS_NAMESPACE, capture.slot, orjson.dumps(memo))
        for record in await kv.scan(PG_SLOTS_NAMESPACE):
            memo = orjson.loads(record.value)
            if record.key in keep or memo.get("app") != self.app:
                continue
            try:
                url = self._url(memo.get("function", "?"), memo.get("source", ""))
                import psycopg

                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await drop_slot(conn, record.key)
            except Exception as exc:
                logger.warning(
                    "the capture of %s is no longer declared, but its slot %s could not be dropped (%s); drop it"
                    " with SELECT pg_drop_replication_slot('%s'); or it keeps WAL on the server",
                    memo.get("function"),
                    record.key,
                    exc,
                    record.key,
                )
                continue
            with contextlib.suppress(Exception):
                await kv.delete(CHANGE_CHECKPOINTS_NAMESPACE, pg_capture_checkpoint(record.key))
                await kv.delete(PG_SLOTS_NAMESPACE, record.key)


async def _connected(reader: SlotReader, *, fresh: bool = False) -> Any:
    """Connect and check the setup, with a DeclarationError naming the database by its variable on failure."""
    try:
        import psycopg
    except ModuleNotFoundError:
        raise DeclarationError(
            f"function {reader.capture.function!r} captures PostgreSQL changes, which needs psycopg:"
            " pip install 'triggerfish[postgres]'"
        ) from None

    try:
        return await reader.connect(fresh=fresh)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeclarationError(
            f"function {reader.capture.function!r}: cannot reach the database named by {reader.capture.source}"
            f" ({first}); check the URL in that variable and that PostgreSQL is running"
        ) from None


def _view(value: str) -> ViewType:
    if value == "KEYS_ONLY":
        return "KEYS_ONLY"
    if value == "OLD_IMAGE":
        return "OLD_IMAGE"
    if value == "NEW_AND_OLD_IMAGES":
        return "NEW_AND_OLD_IMAGES"
    return "NEW_IMAGE"
