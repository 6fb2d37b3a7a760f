"""Schedules as a live trigger: the background scheduler the server runs.

    scheduler = Scheduler(store, app.functions, invoker=invoker)
    await scheduler.start()               # fires every due occurrence, checking each `tick` seconds
    await scheduler.pause("nightly_report")
    for status in await scheduler.next_fires():
        print(status.name, status.next_fire)
    await scheduler.stop()

Every `@app.schedule` trigger is one schedule. Its name is the function's
name, or `name#1`, `name#2`, ... for a function with several, as the bus
names a function's event rules; the name is what the event's `resources`
and `pause()` use. Its durable state is one key-value record in
`triggerfish.schedules` keyed by function, time zone and expression, so a
changed expression is a new schedule and an unchanged one keeps its state
across restarts and hot reloads.

Once per occurrence, across restarts and across servers on one store
--------------------------------------------------------------------
The record holds `after` (occurrences strictly after it are due) and, while
an occurrence is being fired, a claim: the occurrences, the claiming
scheduler and a lease. Firing goes in three steps, each one durable write:

1. claim: compare-and-set the record from the version read to one carrying
   the claim. Of two schedulers that read the same version, one wins; the
   other re-reads, sees a live claim and leaves the schedule alone. So two
   schedulers never both fire an occurrence.
2. enqueue: queue each claimed occurrence as an asynchronous invocation
   whose request id, event id and queue dedup id are all derived from
   (function, expression, time zone, occurrence), so the same occurrence
   always makes the same invocation.
3. commit: compare-and-set `after` to the newest claimed occurrence and drop
   the claim.

A crash before 1 changes nothing: the occurrence is still due. A crash
between 1 and 2 leaves a claim nobody finishes until its lease
(`CLAIM_LEASE`, 30 s) runs out; then any scheduler, including the restarted
one, takes it over and fires the claimed occurrences: late, not lost. A
crash between 2 and 3 is the same, except that the occurrence was already
queued: the takeover queues it again with the same dedup id, and the
function's queue drops it, as it drops any dedup id seen within its dedup
window (5 minutes by default, well over the lease). A crash after 3 has
nothing left to do. Enqueueing before committing is what makes it
at-least-once; the dedup id is what makes the at-least-once mostly
exactly-once. The one duplicate left is a takeover more than the dedup
window after the crashed enqueue (every server down for longer than that
mid-fire): it carries the same request id and event id, so a handler that
must not run twice can key its idempotency on `event["id"]`.

Missed fires
------------
When the server was down (or the schedule paused, see below), several
occurrences can be due at once. `missed` decides what fires:

- "latest" (the default): one invocation, for the latest due occurrence.
- "all": each due occurrence, oldest first, but at most `MAX_CATCH_UP` (100):
  the most recent ones; older ones are skipped with a warning.
- "skip": none that are missed; an occurrence fires only if it is found
  within `grace` seconds of its time, else the schedule resumes from now.

A schedule seen for the first time does not fire for times before that
moment, `at(...)` fires once and never again, and a resumed schedule does
not fire for the times it was paused.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeGuard, cast

from triggerfish.errors import DeclarationError, InvalidInputError, ScheduleNotFoundError, StoreError
from triggerfish.events.shapes import scheduled_event
from triggerfish.model import FunctionSpec, ScheduleTrigger
from triggerfish.names import SCHEDULES_NAMESPACE
from triggerfish.schedule import Schedule, parse_schedule
from triggerfish.store import ABSENT, KVRecord, Store
from triggerfish.triggers._schedule_state import MICROSECOND, Due, MissedPolicy, State, due, iso

__all__ = [
    "CLAIM_LEASE",
    "MAX_CATCH_UP",
    "MISSED_POLICIES",
    "SCHEDULES_NAMESPACE",
    "DeclaredSchedule",
    "MissedPolicy",
    "ScheduleInvoker",
    "ScheduleStatus",
    "Scheduler",
    "declared_schedules",
    "occurrence_id",
]

logger = logging.getLogger("triggerfish.schedules")

#: Most occurrences one schedule fires at once under `missed="all"`.
MAX_CATCH_UP = 100
#: Seconds a claim on an occurrence lasts before another scheduler may fire it instead.
CLAIM_LEASE = 30.0
MISSED_POLICIES = ("latest", "all", "skip")
#: Seconds `stop()` lets a firing in progress finish before cancelling it.
STOP_PATIENCE = 5.0

_STATE_PREFIX = "state/"
# Occurrence ids are UUIDv5 in this namespace: stable across servers and versions, never random.
_IDS = uuid.UUID("417493c3-667f-423e-9c16-53a3c8a8ae21")
# A normal firing takes three rounds (claim, fire and commit, nothing left); more means others keep writing.
_ROUNDS = 8
_SCAN_LIMIT = 1_000_000


class ScheduleInvoker(Protocol):
    """What the scheduler needs to queue an invocation: `Invoker.invoke_async` fits."""

    async def invoke_async(
        self,
        function: str,
        event: Any = None,
        *,
        trigger: str = ...,
        request_id: str | None = ...,
        dedup_id: str | None = ...,
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class DeclaredSchedule:
    """One `schedule` trigger of one function."""

    name: str
    function: str
    expression: str
    tz: str | None
    schedule: Schedule

    @property
    def key(self) -> str:
        """The key of its state record: a changed expression or time zone is a new schedule."""
        return f"{_STATE_PREFIX}{self.function} {self.tz or 'UTC'} {self.expression}"

    @property
    def identity(self) -> tuple[str, str, str | None]:
        return self.function, self.expression, self.tz


@dataclass(frozen=True, slots=True)
class ScheduleStatus:
    """A schedule as the control API shows it.

    `next_fire` is when it fires next (in the past when it is due now), None
    when it is paused or will never fire again; `first_seen` is None for a
    schedule no scheduler has run yet.
    """

    name: str
    function: str
    expression: str
    tz: str | None
    next_fire: datetime.datetime | None
    last_fired: datetime.datetime | None
    paused: bool
    first_seen: datetime.datetime | None


def declared_schedules(specs: Mapping[str, FunctionSpec]) -> list[DeclaredSchedule]:
    """The schedules the functions declare, named as the scheduler names them, in declaration order.

    Raises DeclarationError naming the function when a schedule does not parse.
    A schedule declared twice on one function counts once.
    """
    found: list[DeclaredSchedule] = []
    keys: set[str] = set()
    for spec in specs.values():
        triggers = [t for t in spec.triggers if isinstance(t, ScheduleTrigger)]
        for index, trigger in enumerate(triggers, start=1):
            try:
                parsed = parse_schedule(trigger.expression, trigger.tz)
            except ValueError as exc:
                raise DeclarationError(f"function {spec.name!r}: invalid schedule: {exc}") from None
            name = spec.name if len(triggers) == 1 else f"{spec.name}#{index}"
            declared = DeclaredSchedule(name, spec.name, parsed.expression, trigger.tz, parsed)
            if declared.key not in keys:
                keys.add(declared.key)
                found.append(declared)
    return found


def occurrence_id(schedule: DeclaredSchedule, occurrence: datetime.datetime) -> str:
    """The request id (and event id, and dedup id) of one occurrence: the same on every server, every time."""
    text = "\n".join([schedule.function, schedule.expression, schedule.tz or "UTC", iso(occurrence)])
    return str(uuid.uuid5(_IDS, text))


class Scheduler:
    """Fires the app's schedules as asynchronous invocations, once per occurrence, durably.

    `missed` is the missed-fire policy ("latest", "all" or "skip", see the
    module docs); `tick` how often, in seconds, the background loop looks
    for due occurrences (so a fire is at most that late); `grace` how late,
    in seconds, an occurrence may be found and still count as on time under
    `missed="skip"`. `clock` gives the time when `run_due()` is not given one.

    Raises InvalidInputError for a bad policy, tick or grace, and
    DeclarationError for a schedule that does not parse.
    """

    def __init__(
        self,
        store: Store,
        specs: Mapping[str, FunctionSpec],
        *,
        invoker: ScheduleInvoker,
        clock: Callable[[], float] = time.time,
        missed: str = "latest",
        tick: float = 1.0,
        grace: float = 60.0,
    ) -> None:
        if missed not in MISSED_POLICIES:
            raise InvalidInputError(
                f"Scheduler(missed={missed!r}): the missed-fire policy is 'latest' (fire once for the latest"
                f" missed time), 'all' (each missed time, at most {MAX_CATCH_UP}) or 'skip' (none)"
            )
        if not _number(tick) or not 0 < tick <= 60:
            raise InvalidInputError(
                f"Scheduler(tick={tick!r}): the tick is how often due schedules are looked for, from more than 0"
                " to 60 seconds"
            )
        if not _number(grace) or not tick <= grace <= 86_400:
            raise InvalidInputError(
                f"Scheduler(grace={grace!r}): grace must be from the tick ({tick:g} s) to 86400 seconds"
            )
        self.tick = float(tick)
        self.grace = float(grace)
        self.store = store
        self.invoker = invoker
        self.clock = clock
        self.missed = cast(MissedPolicy, missed)
        #: Occurrences this scheduler enqueued, and times it found due times the missed-fire policy left out, by
        #: schedule (what the metrics report; this node's).
        self.fires: collections.Counter[str] = collections.Counter()
        self.misses: collections.Counter[str] = collections.Counter()
        #: Identifies this scheduler's claims; a restarted one is a new owner and waits out the old claims.
        self.owner = uuid.uuid4().hex
        self._schedules = declared_schedules(specs)
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def schedules(self) -> list[DeclaredSchedule]:
        """The schedules this scheduler fires, in declaration order."""
        return list(self._schedules)

    # --- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Fire due occurrences in the background, every `tick` seconds, until `stop()`."""
        if self._task is not None:
            return
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="triggerfish-scheduler")

    async def stop(self) -> None:
        """Stop the background loop, letting a firing in progress finish (up to `STOP_PATIENCE` s)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        done, _ = await asyncio.wait({task}, timeout=STOP_PATIENCE)
        if not done:
            # A claim left behind is taken over by the next scheduler once its lease ends: late, not lost.
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_due()
            except Exception:
                logger.exception("the scheduler failed; trying again in %g s", self.tick)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tick):
                    await self._stop.wait()

    async def update(self, specs: Mapping[str, FunctionSpec], *, invoker: ScheduleInvoker | None = None) -> None:
        """Switch to a new app version's schedules (hot reload), and its invoker if given.

        Unchanged schedules (same function, expression and time zone) keep
        their state; removed ones lose theirs, so one added again later is
        new. Raises DeclarationError, changing nothing, when a schedule does
        not parse.
        """
        schedules = declared_schedules(specs)
        async with self._lock:
            removed = {s.key for s in self._schedules} - {s.key for s in schedules}
            self._schedules = schedules
            if invoker is not None:
                self.invoker = invoker
            for key in sorted(removed):
                await self.store.kv.delete(SCHEDULES_NAMESPACE, key)

    async def run_due(self, now: datetime.datetime | None = None) -> list[str]:
        """Fire every occurrence due at `now` (default: the clock) and return their request ids.

        The background loop calls this; tests call it with explicit times.
        A schedule whose invocation cannot be queued is logged and tried
        again on the next call; the others still fire.
        """
        moment = self._now(now, "run_due")
        async with self._lock:
            records = await self._records()
            fired: list[str] = []
            for schedule in list(self._schedules):
                try:
                    fired.extend(await self._fire(schedule, records.get(schedule.key), moment))
                except Exception:
                    logger.exception("schedule %r: firing failed; trying again on the next tick", schedule.name)
            return fired

    # --- looking and steering ----------------------------------------------------------------

    async def next_fires(self, now: datetime.datetime | None = None) -> list[ScheduleStatus]:
        """Each schedule with its next fire time, as of `now` (default: the clock), read from the store."""
        moment = self._now(now, "next_fires")
        records = await self._records()
        statuses = []
        for schedule in self._schedules:
            record = records.get(schedule.key)
            state = None if record is None else State.decode(record.value)
            if state is None:
                next_fire = schedule.schedule.next_after(moment - MICROSECOND)
            elif state.paused:
                next_fire = None
            elif state.pending:
                next_fire = state.pending[0]
            else:
                fire = self._due(schedule, state, moment).fire
                next_fire = fire[0] if fire else schedule.schedule.next_after(max(state.after, moment))
            statuses.append(
                ScheduleStatus(
                    name=schedule.name,
                    function=schedule.function,
                    expression=schedule.expression,
                    tz=schedule.tz,
                    next_fire=next_fire,
                    last_fired=None if state is None else state.last_fired,
                    paused=False if state is None else state.paused,
                    first_seen=None if state is None else state.first_seen,
                )
            )
        return statuses

    async def pause(self, name: str, *, now: datetime.datetime | None = None) -> None:
        """Stop firing the schedule `name` until `resume(name)`, on every server; kept across restarts.

        A firing already claimed still completes. Raises ScheduleNotFoundError naming the schedules.
        """
        await self._set_paused(self._find(name), True, self._now(now, "pause"))

    async def resume(self, name: str, *, now: datetime.datetime | None = None) -> None:
        """Fire the schedule `name` again, from now on: the times it was paused do not fire."""
        await self._set_paused(self._find(name), False, self._now(now, "resume"))

    # --- internals ---------------------------------------------------------------------------

    async def _fire(self, schedule: DeclaredSchedule, record: KVRecord | None, now: datetime.datetime) -> list[str]:
        fired: list[str] = []
        kv = self.store.kv
        for _ in range(_ROUNDS):
            if record is None:
                created = await kv.put(
                    SCHEDULES_NAMESPACE, schedule.key, State.new(now).encode(*schedule.identity), if_version=ABSENT
                )
                record = created or await kv.get(SCHEDULES_NAMESPACE, schedule.key)
                continue
            state = State.decode(record.value)
            if state is None:
                logger.error("schedule %r: its state record is unreadable; starting it afresh", schedule.name)
                fresh = State.new(now).encode(*schedule.identity)
                record = await kv.put(
                    SCHEDULES_NAMESPACE, schedule.key, fresh, if_version=record.version
                ) or await kv.get(SCHEDULES_NAMESPACE, schedule.key)
                continue
            if state.pending:
                if state.owner != self.owner and state.lease_until is not None and state.lease_until > now:
                    return fired  # another scheduler is firing these right now
                # Ours, or a claim whose scheduler died: fire it (again: the dedup id drops a repeat), then commit.
                for request_id in await self._enqueue(schedule, state.pending):
                    if request_id not in fired:
                        fired.append(request_id)
                self.fires[schedule.name] += len(state.pending)
                newest = state.pending[-1]
                done = replace(
                    state,
                    after=max(state.after, newest),
                    last_fired=newest if state.last_fired is None else max(state.last_fired, newest),
                    pending=(),
                    owner=None,
                    lease_until=None,
                )
                record = await self._write(schedule, done, record)
                continue
            now_due = self._due(schedule, state, now)
            if now_due.left_out:
                self.misses[schedule.name] += 1
            if now_due.left_out and now_due.fire:
                logger.warning(
                    "schedule %r: due times were missed; firing %d of them, up to %s (missed=%r)",
                    schedule.name,
                    len(now_due.fire),
                    now_due.fire[-1],
                    self.missed,
                )
            elif now_due.left_out:
                logger.warning(
                    "schedule %r: skipped the missed times up to %s (missed='skip')", schedule.name, now_due.skip_to
                )
            if now_due.fire:
                claim = replace(state, pending=tuple(now_due.fire), owner=self.owner, lease_until=now + _lease())
                record = await self._write(schedule, claim, record)
                continue
            if now_due.skip_to is not None:
                record = await self._write(schedule, replace(state, after=now_due.skip_to), record)
                continue
            return fired
        logger.warning("schedule %r: its state kept changing under this scheduler; next tick", schedule.name)
        return fired

    async def _write(self, schedule: DeclaredSchedule, state: State, record: KVRecord) -> KVRecord | None:
        """Compare-and-set; when someone else wrote first, the record as it is now (None if deleted)."""
        kv = self.store.kv
        written = await kv.put(
            SCHEDULES_NAMESPACE, schedule.key, state.encode(*schedule.identity), if_version=record.version
        )
        return written if written is not None else await kv.get(SCHEDULES_NAMESPACE, schedule.key)

    def _due(self, schedule: DeclaredSchedule, state: State, now: datetime.datetime) -> Due:
        return due(schedule.schedule, state, now, missed=self.missed, grace=self.grace, limit=MAX_CATCH_UP)

    async def _enqueue(self, schedule: DeclaredSchedule, occurrences: Sequence[datetime.datetime]) -> list[str]:
        ids = [occurrence_id(schedule, moment) for moment in occurrences]
        # Started together so they share one durable write; the queue keeps the order they were started in.
        await asyncio.gather(
            *(
                self.invoker.invoke_async(
                    schedule.function,
                    scheduled_event(schedule.name, moment, event_id=request_id),
                    trigger="schedule",
                    request_id=request_id,
                    dedup_id=request_id,
                )
                for moment, request_id in zip(occurrences, ids, strict=True)
            )
        )
        return ids

    async def _set_paused(self, schedule: DeclaredSchedule, paused: bool, now: datetime.datetime) -> None:
        kv = self.store.kv
        for _ in range(_ROUNDS):
            record = await kv.get(SCHEDULES_NAMESPACE, schedule.key)
            state = (None if record is None else State.decode(record.value)) or State.new(now)
            if state.paused == paused:
                return
            # Resuming moves `after` to now, so the times it was paused are not "missed" fires.
            after = state.after if paused else max(state.after, now - MICROSECOND)
            changed = replace(state, paused=paused, after=after)
            version = ABSENT if record is None else record.version
            if (
                await kv.put(SCHEDULES_NAMESPACE, schedule.key, changed.encode(*schedule.identity), if_version=version)
                is not None
            ):
                return
        verb = "pause" if paused else "resume"
        raise StoreError(f"schedule {schedule.name!r}: its state kept changing under {verb}(); try again")

    async def _records(self) -> dict[str, KVRecord]:
        records = await self.store.kv.scan(SCHEDULES_NAMESPACE, prefix=_STATE_PREFIX, limit=_SCAN_LIMIT)
        return {record.key: record for record in records}

    def _find(self, name: str) -> DeclaredSchedule:
        for schedule in self._schedules:
            if schedule.name == name:
                return schedule
        known = ", ".join(repr(s.name) for s in self._schedules)
        raise ScheduleNotFoundError(
            f"no schedule named {name!r}; "
            + (f"the app's schedules are {known}" if known else "the app declares no schedules")
        )

    def _now(self, now: datetime.datetime | None, where: str) -> datetime.datetime:
        if now is None:
            return datetime.datetime.fromtimestamp(self.clock(), datetime.UTC)
        if not isinstance(now, datetime.datetime) or now.tzinfo is None:
            raise InvalidInputError(
                f"{where}(now={now!r}): pass an aware datetime, e.g. datetime.datetime.now(datetime.UTC)"
            )
        return now


def _lease() -> datetime.timedelta:
    return datetime.timedelta(seconds=CLAIM_LEASE)


def _number(value: object) -> TypeGuard[float]:
    return not isinstance(value, bool) and isinstance(value, int | float) and value == value
