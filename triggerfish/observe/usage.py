"""Usage and cost: invocations, requests, billed duration, GB-seconds and data in and out per function and hour,
kept for good.

    rollup = UsageRollup(store)
    await rollup.roll()                                         # fold the records stored since the last roll
    rows = await rollup.report(since=..., until=..., by="function")
    priced = price(rows, Prices.LAMBDA_X86)                     # the cost of each row

Invocation records are trimmed after their retention (7 days by default), so
usage is not recomputed from them: it is rolled up as it happens. Each
function's record stream (`invocations.<function>`) is consumed in the log
consumer group `usage`; a claimed range is folded into one bucket per
function and hour (key-value namespace `triggerfish.usage`, key
`<YYYY-MM-DD>T<HH>/<function>`), and the buckets and the range's `Commit` are
one atomic write, each bucket written only if it is still the version read
(two nodes folding ranges into the same hour do not lose each other's
counts: the loser reads again and retries). On a store whose parts come
from different engines the writes run in order, buckets first: a crash
between them counts a range twice, never loses it.

What a bucket counts, following Lambda's bill: `invocations` are attempts
(every record), `requests` the attempts that ran (Lambda bills a request for
each, errors included; throttled and expired attempts never ran), `errors`
the attempts that ran and failed, `billed_ms` and `gb_seconds` as each record
billed them, `bytes_in` and `bytes_out` the JSON of the events the attempts
that ran were sent and of the results they returned (records carry both
sizes, measured by the runner from the encodings it makes anyway; an error
returns no result, so adds no bytes out).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

import orjson

from triggerfish.errors import AtomicConflictError, InvalidInputError
from triggerfish.names import RECORD_STREAM_PREFIX, USAGE_GROUP, USAGE_NAMESPACE
from triggerfish.store import LogClaim, Store
from triggerfish.store.atomic import Commit, Op, Put
from triggerfish.store.base import ABSENT

log = logging.getLogger("triggerfish.usage")

#: Records folded per claimed range.
ROLL_BATCH = 1000
#: Seconds a claimed range stays this roller's.
ROLL_LEASE = 30.0
#: Tries of one range whose buckets another node changed meanwhile.
_CONFLICT_TRIES = 5
#: What a report's rows can be grouped by.
GROUPINGS = ("function", "day", "hour")
Grouping = Literal["function", "day", "hour"]
#: Statuses of attempts that never ran: no request billed.
_NOT_RUN = frozenset({"throttled", "expired"})


@dataclass(slots=True)
class Usage:
    """What was used: counts, billed milliseconds, GB-seconds, and bytes of events in and results out."""

    invocations: int = 0
    requests: int = 0
    errors: int = 0
    billed_ms: int = 0
    gb_seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0

    def add(self, other: Usage) -> None:
        self.invocations += other.invocations
        self.requests += other.requests
        self.errors += other.errors
        self.billed_ms += other.billed_ms
        self.gb_seconds += other.gb_seconds
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out

    def to_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, document: dict[str, float | int]) -> Usage:
        return cls(
            invocations=int(document.get("invocations", 0)),
            requests=int(document.get("requests", 0)),
            errors=int(document.get("errors", 0)),
            billed_ms=int(document.get("billed_ms", 0)),
            gb_seconds=float(document.get("gb_seconds", 0.0)),
            # Buckets rolled before data in and out were counted have neither: none counted then.
            bytes_in=int(document.get("bytes_in", 0)),
            bytes_out=int(document.get("bytes_out", 0)),
        )


#: The times a report takes: year 1 to 9999, what a bucket's name can say.
EARLIEST, LATEST = -62135596800.0, 253402300799.0


def hour_of(moment: float) -> str:
    """The UTC hour a time falls in, as a bucket names it: `2026-12-06T16`."""
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H")


def check_moment(name: str, moment: float | None) -> float | None:
    """`moment` if a report can take it (None too); else InvalidInputError naming it and the range."""
    if moment is not None and not EARLIEST <= moment <= LATEST:
        raise InvalidInputError(
            f"{name} must be a time from year 1 to 9999 (epoch seconds {EARLIEST:.0f} to {LATEST:.0f})"
        )
    return moment


def bucket_key(hour: str, function: str) -> str:
    return f"{hour}/{function}"


def fold(records: Iterable[dict[str, object]]) -> dict[str, Usage]:
    """Invocation records (as stored: JSON objects) into usage by bucket key (hour the attempt started, function)."""
    buckets: dict[str, Usage] = {}
    for record in records:
        function, started = record.get("function"), record.get("started_at")
        if not isinstance(function, str) or not isinstance(started, int | float):
            continue  # not a record this version writes: nothing to count
        key = bucket_key(hour_of(float(started)), function)
        usage = buckets.get(key)
        if usage is None:
            usage = buckets[key] = Usage()
        usage.invocations += 1
        status = record.get("status")
        if status in _NOT_RUN:
            continue
        usage.requests += 1
        if status != "succeeded":
            usage.errors += 1
        billed = record.get("billed_duration_ms")
        usage.billed_ms += int(billed) if isinstance(billed, int | float) else 0
        gbs = record.get("gb_seconds")
        usage.gb_seconds += float(gbs) if isinstance(gbs, int | float) else 0.0
        sent, returned = record.get("input_bytes"), record.get("output_bytes")
        usage.bytes_in += sent if type(sent) is int else 0
        usage.bytes_out += returned if type(returned) is int else 0
    return buckets


@dataclass(frozen=True, slots=True)
class Prices:
    """What usage costs: per GB-second of billed duration and per million requests (any currency)."""

    per_gb_second: float = 0.0
    per_million_requests: float = 0.0

    def __post_init__(self) -> None:
        for name in ("per_gb_second", "per_million_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
                raise InvalidInputError(f"a price {name} is a number from 0 up, not {value!r}")

    def cost(self, usage: Usage) -> float:
        return usage.gb_seconds * self.per_gb_second + usage.requests / 1e6 * self.per_million_requests


#: Lambda's published on-demand prices (x86, the first pricing tier, US East), in USD: the documented example.
LAMBDA_X86 = Prices(per_gb_second=0.0000166667, per_million_requests=0.20)


@dataclass(slots=True)
class UsageRow:
    """One row of a report: what it is grouped by (a function, a day, an hour) and its usage."""

    key: str
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None

    def to_dict(self) -> dict[str, object]:
        row: dict[str, object] = {"key": self.key, **self.usage.to_dict()}
        if self.cost is not None:
            row["cost"] = self.cost
        return row


def group(buckets: Iterable[tuple[str, Usage]], by: Grouping) -> list[UsageRow]:
    """Buckets (by key) summed per function, day or hour; rows in key order."""
    if by not in GROUPINGS:
        raise InvalidInputError(f"usage is grouped by one of {', '.join(GROUPINGS)}, not {by!r}")
    rows: dict[str, UsageRow] = {}
    for key, usage in buckets:
        hour, _, function = key.partition("/")
        name = function if by == "function" else hour[:10] if by == "day" else hour
        row = rows.get(name)
        if row is None:
            row = rows[name] = UsageRow(name)
        row.usage.add(usage)
    return [rows[name] for name in sorted(rows)]


def price(rows: Sequence[UsageRow], prices: Prices) -> tuple[list[UsageRow], UsageRow]:
    """Each row with its cost, and the total row (key `total`)."""
    total = UsageRow("total")
    for row in rows:
        row.cost = prices.cost(row.usage)
        total.usage.add(row.usage)
    total.cost = prices.cost(total.usage)
    return list(rows), total


class UsageRollup:
    """Rolls an app's invocation records up into hourly buckets per function, and reports from them."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._rolling = asyncio.Lock()

    async def roll(self) -> int:
        """Fold every record stored since the last roll, on any node; returns how many this call folded."""
        async with self._rolling:
            folded = 0
            streams = [s for s in await self.store.log.streams() if s.startswith(RECORD_STREAM_PREFIX)]
            for stream in streams:
                while True:
                    claim = await self.store.log.claim(stream, USAGE_GROUP, limit=ROLL_BATCH, lease=ROLL_LEASE)
                    if claim is None:
                        break
                    records = []
                    for record in claim.records:
                        try:
                            records.append(orjson.loads(record.data))
                        except orjson.JSONDecodeError:
                            log.warning("usage: record %d of %s is not JSON; not counted", record.offset, stream)
                    await self._write(fold(records), claim)
                    folded += len(claim.records)
            return folded

    async def _write(self, buckets: dict[str, Usage], claim: LogClaim) -> None:
        kv = self.store.kv
        for attempt in range(_CONFLICT_TRIES):
            writes: list[Op] = []
            for key, usage in sorted(buckets.items()):
                current = await kv.get(USAGE_NAMESPACE, key)
                merged = Usage() if current is None else Usage.from_dict(orjson.loads(current.value))
                merged.add(usage)
                version = ABSENT if current is None else current.version
                writes.append(Put(USAGE_NAMESPACE, key, orjson.dumps(merged.to_dict()), if_version=version))
            try:
                await self.store.atomic([*writes, Commit(claim)])
                return
            except AtomicConflictError as exc:
                if exc.index == len(writes):  # the claim itself was lost: another roller folds this range
                    return
                if attempt == _CONFLICT_TRIES - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))

    async def buckets(self, since: float | None = None, until: float | None = None) -> list[tuple[str, Usage]]:
        """Every bucket (key, usage) whose hour overlaps [since, until), in key order; rolls first."""
        check_moment("since", since)
        check_moment("until", until)
        await self.roll()
        if since is not None and until is not None and until < since:
            raise InvalidInputError(f"until ({until}) is before since ({since})")
        first = None if since is None else hour_of(since)
        last = None if until is None else hour_of(until)
        found = await self.store.kv.scan(USAGE_NAMESPACE, limit=2**62)
        kept = []
        for record in found:
            hour = record.key.partition("/")[0]
            if first is not None and hour < first:
                continue
            if last is not None and (hour > last or (hour == last and until == _hour_start(last))):
                continue
            kept.append((record.key, Usage.from_dict(orjson.loads(record.value))))
        return kept

    async def report(
        self, *, since: float | None = None, until: float | None = None, by: Grouping = "function"
    ) -> list[UsageRow]:
        """Usage in [since, until) by whole hours, grouped `by` function, day or hour."""
        return group(await self.buckets(since, until), by)


def _hour_start(hour: str) -> float:
    return datetime.datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=datetime.UTC).timestamp()
