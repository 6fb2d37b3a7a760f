"""Parked records: log records a consumer could not read, kept with the reason instead of dropped.

Publishers validate on write (see `triggerfish.bus.publisher`), so a bus's or
topic's log holds only what can be read back. A record that still cannot be
read (a store written by a buggy or newer version, a hand-edited database)
must not vanish with a line in a log file: the consumer parks it here, in
the log stream `platform.parked`, with where it came from and why, moves on,
and the control API (`GET /-/api/v1/parked`) and `triggerfish events parked`
show it.

    await park(store.log, record, "not a CloudEvent: id is required")
    for entry in await parked(store.log):
        print(entry.stream, entry.offset, entry.reason)
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from triggerfish.names import PARKED_STREAM
from triggerfish.store import EventLog, LogRecord

logger = logging.getLogger("triggerfish.bus")


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    """One parked record: its stream and offset, why it was parked, when, and its bytes."""

    #: This entry's own offset in `platform.parked` (page with it).
    id: int
    stream: str
    offset: int
    reason: str
    parked_at: float
    data: bytes

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": self.id,
            "stream": self.stream,
            "offset": self.offset,
            "reason": self.reason,
            "parked_at": self.parked_at,
        }
        try:
            document["data"] = self.data.decode("utf-8")
        except UnicodeDecodeError:
            document["data_base64"] = base64.b64encode(self.data).decode("ascii")
        return document


async def park(log: EventLog, record: LogRecord, reason: str) -> None:
    """Keep `record` in `platform.parked` with `reason`; returns once that is durable."""
    logger.error("parked unreadable record %s@%d: %s", record.stream, record.offset, reason)
    entry = {
        "stream": record.stream,
        "offset": record.offset,
        "reason": reason[:2000],
        "data_base64": base64.b64encode(record.data).decode("ascii"),
    }
    await log.append(PARKED_STREAM, orjson.dumps(entry))


async def parked(log: EventLog, *, after: int = 0, limit: int = 100) -> list[ParkedRecord]:
    """Parked records after entry `after`, oldest first."""
    out = []
    for entry in await log.read(PARKED_STREAM, after=after, limit=limit):
        document = orjson.loads(entry.data)
        out.append(
            ParkedRecord(
                id=entry.offset,
                stream=document["stream"],
                offset=document["offset"],
                reason=document["reason"],
                parked_at=entry.time,
                data=base64.b64decode(document["data_base64"]),
            )
        )
    return out
