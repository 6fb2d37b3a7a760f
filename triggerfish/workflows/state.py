"""Where workflows are kept: records, timers and event waits, on any store (memory, SQLite, PostgreSQL).

- A workflow's record (status, input, result or error, every operation with
  its timing) is one key-value record `x/<id>` in `triggerfish.workflows`,
  written with compare-and-set: a checkpoint, a completed wait and a
  cancellation each replace it only if nothing else did since it was read.
- A timer is a message on the queue `triggerfish.workflow-timers`, delayed
  until it is due (a timer due later than a queue message can be delayed is
  sent again, delayed by what is left, when it comes up: no worker waits).
- An event wait is a record `w/<bus>/<id>/<seq>`: its pattern and the bus's
  last offset when it began (only later events answer it).

These writes are `Op`s, so the platform puts a record, its timers, its waits
and the invocations it causes into one `Store.atomic` write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from triggerfish.names import bus_stream
from triggerfish.store import ABSENT, KVRecord, Message, OutgoingMessage, Store
from triggerfish.store.atomic import Ack, Delete, Op, Put, Send
from triggerfish.workflows.engine import Timer
from triggerfish.workflows.grouped import GroupedWrites

NAMESPACE = "triggerfish.workflows"
TIMER_QUEUE = "triggerfish.workflow-timers"
#: The longest a timer message is delayed at once: the store's longest message delay.
MAX_TIMER_DELAY = 15 * 60.0
#: How many records a listing reads at most.
MAX_LIST = 10_000


@dataclass(frozen=True, slots=True)
class Stored:
    """A workflow's record as read, with the version a compare-and-set write names."""

    record: dict[str, Any]
    version: int


@dataclass(frozen=True, slots=True)
class Wait:
    """An event wait: which workflow and operation, the pattern, and the bus offset it began after."""

    workflow_id: str
    seq: int
    bus: str
    pattern: dict[str, Any]
    after: int
    version: int


def record_key(workflow_id: str) -> str:
    return f"x/{workflow_id}"


def wait_key(bus: str, workflow_id: str, seq: int) -> str:
    return f"w/{bus}/{workflow_id}/{seq}"


class WorkflowState:
    """The workflows of one app in `store` (a scoped store on a server)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: Concurrent writes as one (grouped.py): where each write would be a commit of its own, and a group is all
        #: or nothing (a failed write leaves no other workflow's half-done).
        self.grouped = GroupedWrites(store.atomic) if store.atomic_writes and store.commits_apart else None

    # --- records ------------------------------------------------------------------------------

    async def get(self, workflow_id: str) -> Stored | None:
        found = await self.store.kv.get(NAMESPACE, record_key(workflow_id))
        return None if found is None else _stored(found)

    @staticmethod
    def put(record: Mapping[str, Any], version: int) -> Put:
        """The write of `record` over `version` (ABSENT: a new record)."""
        return Put(NAMESPACE, record_key(record["id"]), orjson.dumps(record), if_version=version)

    async def records(self, *, function: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Every workflow (up to MAX_LIST), newest first, of `function` and in `status` when given."""
        found = [_stored(r).record for r in await self.store.kv.scan(NAMESPACE, prefix="x/", limit=MAX_LIST)]
        chosen = [
            r
            for r in found
            if (function is None or r["function"] == function) and (status is None or r["status"] == status)
        ]
        return sorted(chosen, key=lambda r: (r["started"], r["id"]), reverse=True)

    # --- timers -------------------------------------------------------------------------------

    @staticmethod
    def timer(timer: Timer, now: float) -> Send:
        body = orjson.dumps({"id": timer.workflow_id, "seq": timer.seq, "due": timer.due, "kind": timer.kind})
        delay = min(max(0.0, timer.due - now), MAX_TIMER_DELAY)
        return Send(TIMER_QUEUE, [OutgoingMessage(body, delay=delay)])

    async def timers(self, *, wait: float, limit: int = 64) -> list[tuple[Timer, Message]]:
        """Timer messages that came up (due, or due later and to be sent again), leased for a minute."""
        messages = await self.store.queues.receive(TIMER_QUEUE, max_messages=limit, visibility_timeout=60.0, wait=wait)
        found = []
        for message in messages:
            body = orjson.loads(message.body)
            found.append((Timer(body["id"], int(body["seq"]), float(body["due"]), body["kind"]), message))
        return found

    @staticmethod
    def ack(messages: Sequence[Message]) -> Ack:
        return Ack(TIMER_QUEUE, [m.receipt for m in messages])

    # --- event waits --------------------------------------------------------------------------

    async def offset(self, bus: str) -> int:
        """The bus's last offset now: a wait beginning now is answered by later events only."""
        return await self.store.log.last_offset(bus_stream(bus))

    @staticmethod
    def wait(workflow_id: str, seq: int, bus: str, pattern: Mapping[str, Any], after: int) -> Put:
        value = orjson.dumps({"id": workflow_id, "seq": seq, "bus": bus, "pattern": dict(pattern), "after": after})
        return Put(NAMESPACE, wait_key(bus, workflow_id, seq), value, if_version=ABSENT)

    async def waits(self, bus: str | None = None) -> list[Wait]:
        """The event waits on `bus` (every bus: None)."""
        prefix = "w/" if bus is None else f"w/{bus}/"
        found = []
        for record in await self.store.kv.scan(NAMESPACE, prefix=prefix, limit=MAX_LIST):
            body = orjson.loads(record.value)
            found.append(
                Wait(body["id"], int(body["seq"]), body["bus"], body["pattern"], int(body["after"]), record.version)
            )
        return found

    @staticmethod
    def drop_wait(wait: Wait) -> Delete:
        return Delete(NAMESPACE, wait_key(wait.bus, wait.workflow_id, wait.seq))

    async def atomic(self, ops: Sequence[Op]) -> list[Any]:
        if self.grouped is not None:
            return await self.grouped.atomic(ops)
        return await self.store.atomic(ops)


def _stored(found: KVRecord) -> Stored:
    return Stored(orjson.loads(found.value), found.version)
