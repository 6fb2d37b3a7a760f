"""Archive and replay: the bus's log is its archive.

Every published event stays in the log stream `bus.<name>` until retention
trims it (`Archive.trim`, by age and/or size). `Archive.replay()` reads the
events of a time range and queues deliveries for them again, to one rule or
to every rule that matches them now, each marked with the extension
`replayname` (EventBridge marks replayed events with `replay-name`). A replay
never touches the consumer's checkpoint: live delivery carries on.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

import orjson

from triggerfish.bus.bus import EventBus
from triggerfish.bus.delivery import Delivery
from triggerfish.errors import InvalidInputError
from triggerfish.events import eventbridge
from triggerfish.events.cloudevent import Event
from triggerfish.names import bus_stream
from triggerfish.store import EventLog

#: The extension a replayed event carries: the replay's name.
REPLAY_EXTENSION = eventbridge.REPLAY_EXTENSION
#: How far before the oldest unrouted event a trim by age stops, in seconds.
TRIM_MARGIN = 1.0
_REPLAY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def _seconds(value: float | datetime.datetime, what: str) -> float:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise InvalidInputError(f"{what} must be a timezone-aware datetime (say, with tzinfo=datetime.UTC)")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{what} must be a datetime or seconds since the epoch, not {value!r}")
    return float(value)


async def trim_consumed(
    log: EventLog, stream: str, checkpoint: int, *, max_age: float | None = None, max_bytes: int | None = None
) -> int:
    """Trim `stream` by age and size, but by age never past `checkpoint`, the last record its consumer handled.

    Shared by bus archives and topic logs: both are read by a LogConsumer,
    and a record still waiting for it must survive its retention.
    """
    if max_age is not None:
        pending = await log.read(stream, after=checkpoint, limit=1)
        if pending:
            # The store reads its clock again when it trims: the margin covers the time in between.
            max_age = max(max_age, log.clock() - pending[0].time + TRIM_MARGIN)
    return await log.trim(stream, max_age=max_age, max_bytes=max_bytes)


class Archive:
    """Retention and replay for the buses of one EventBus."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def trim(self, bus: str, *, max_age: float | None = None, max_bytes: int | None = None) -> int:
        """Drop archived events older than `max_age` seconds, then the oldest past `max_bytes`; returns how many.

        Trimming by age never drops an event the consumer has not routed yet
        (one published while the bus was stopped, say): the cut stops short of
        it. Trimming by size has no such guard (the store cannot trim up to an
        offset yet), so keep `max_bytes` well above what can pile up unrouted.
        """
        checkpoint = await self.bus.checkpoint(bus)
        return await trim_consumed(
            self.bus.store.log, bus_stream(bus), checkpoint, max_age=max_age, max_bytes=max_bytes
        )

    async def replay(
        self,
        bus: str,
        start: float | datetime.datetime,
        end: float | datetime.datetime,
        *,
        rule: str | None = None,
        name: str = "replay",
        progress: Callable[[int, int | None, str], None] | None = None,
    ) -> int:
        """Deliver again the events published on `bus` from `start` (inclusive) to `end` (exclusive).

        To rule `rule` only, or to every rule that matches; returns how many
        deliveries were queued. Raises InvalidInputError for a bad range,
        name or an unknown rule. `progress` is told, after each page, how many
        of the range's events were replayed of how many it holds.
        """
        since, until = _seconds(start, "start"), _seconds(end, "end")
        if until <= since:
            raise InvalidInputError(f"replay: end ({until}) must come after start ({since})")
        if not isinstance(name, str) or not _REPLAY_NAME.fullmatch(name):
            raise InvalidInputError(
                f"replay name {name!r}: use 1 to 64 lowercase letters, digits, '-' and '_',"
                " starting with a letter or digit"
            )
        if rule is not None and self.bus.rules.get(bus, rule) is None:
            raise InvalidInputError(f"replay: bus {bus!r} has no rule {rule!r}")
        queued = 0
        after = 0
        first, total = await self._range(bus, since, until) if progress is not None else (0, None)
        if progress is not None:
            progress(0, total, "replay")
        while True:
            records = await self.bus.store.log.read(bus_stream(bus), after=after, since=since, until=until, limit=500)
            if not records:
                if progress is not None:
                    progress(total or 0, total, "replay")
                return queued
            deliveries = []
            for record in records:
                try:
                    document = orjson.loads(record.data)
                    event = Event.from_dict(document).with_extensions(**{REPLAY_EXTENSION: name})
                except ValueError:
                    continue
                for matched in self.bus.rules.matching(bus, document):
                    if rule is not None and matched.id != rule:
                        continue
                    for target in matched.targets:
                        deliveries.append(
                            Delivery(bus, matched.id, target, event, queued_at=self.bus.clock(), ingested=record.time)
                        )
            await self.bus.deliverer.enqueue(deliveries)
            queued += len(deliveries)
            after = records[-1].offset
            if progress is not None and total is not None:
                progress(min(after - first + 1, total), total, "replay")

    async def _range(self, bus: str, since: float, until: float) -> tuple[int, int]:
        """The first offset of the range and how many events it holds (offsets are counted, not records read)."""
        log, stream = self.bus.store.log, bus_stream(bus)
        head = await log.read(stream, since=since, until=until, limit=1)
        if not head:
            return 0, 0
        beyond = await log.read(stream, after=head[0].offset, since=until, limit=1)
        last = beyond[0].offset - 1 if beyond else await log.last_offset(stream)
        return head[0].offset, max(last - head[0].offset + 1, 0)
