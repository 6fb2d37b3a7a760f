"""The live scheduler on a real SQLite store: fire times, durability, missed fires, servers, steering."""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from triggerfish import App, InvalidInputError
from triggerfish.errors import DeclarationError, ScheduleNotFoundError
from triggerfish.model import FunctionSettings, FunctionSpec, ScheduleTrigger
from triggerfish.names import SCHEDULES_NAMESPACE
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.schedule import parse_schedule
from triggerfish.store import Store, open_store
from triggerfish.triggers._schedule_state import State, due, latest_ones, latest_until
from triggerfish.triggers.schedules import (
    CLAIM_LEASE,
    MAX_CATCH_UP,
    ScheduleInvoker,
    Scheduler,
    declared_schedules,
    occurrence_id,
)

UTC = datetime.UTC


def at(text: str) -> datetime.datetime:
    """A UTC moment from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def later(moment: datetime.datetime, seconds: float) -> datetime.datetime:
    return moment + datetime.timedelta(seconds=seconds)


class Handled:
    """The events the app's handlers received, in order, per function."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        #: Set when the first event arrives (handlers run in threads).
        self.first = threading.Event()

    def times(self, function: str | None = None) -> list[str]:
        return [event["time"] for name, event in self.events if function is None or name == function]


def make_app(
    schedules: Mapping[str, list[tuple[str, str | None]]], handled: Handled | None = None
) -> tuple[App, Handled]:
    """An app with one function per entry, each with its schedules (expression, tz) in the order given."""
    app = App("tests")
    handled = handled or Handled()
    for function, declared in schedules.items():

        def handler(event: dict[str, Any], context: Any, _name: str = function) -> None:
            handled.events.append((_name, event))
            handled.first.set()

        decorated = handler
        for expression, tz in reversed(declared):  # decorators apply bottom-up
            decorated = app.schedule(expression, tz=tz, name=function)(decorated)
    return app, handled


class Crash(BaseException):
    """The server dying at this point: nothing after it runs, no handler catches it."""


class CrashingInvoker:
    """An invoker that dies before (or just after) queuing, like a server killed at that instant."""

    def __init__(self, invoker: Invoker, *, after_enqueue: bool) -> None:
        self.invoker = invoker
        self.after_enqueue = after_enqueue

    async def invoke_async(
        self,
        function: str,
        event: Any = None,
        *,
        trigger: str = "async",
        request_id: str | None = None,
        dedup_id: str | None = None,
    ) -> str:
        if not self.after_enqueue:
            raise Crash
        await self.invoker.invoke_async(function, event, trigger=trigger, request_id=request_id, dedup_id=dedup_id)
        raise Crash


class Server:
    """One server process on the store file: its own connection, runner, invoker and scheduler."""

    def __init__(
        self,
        path: Path,
        app: App | Mapping[str, FunctionSpec],
        *,
        wrap: Callable[[Invoker], ScheduleInvoker] | None = None,
        **options: Any,
    ) -> None:
        self.url = f"sqlite:///{path / 's.db'}"
        self.specs = dict(app.functions if isinstance(app, App) else app)
        self.wrap = wrap
        self.options = options

    async def __aenter__(self) -> Server:
        self.store: Store = await open_store(self.url)
        runner = InProcessRunner(self.specs, platform=StorePlatform(self.store))
        self.invoker = Invoker(runner, self.store)
        await self.invoker.start()
        invoker = self.wrap(self.invoker) if self.wrap else self.invoker
        self.scheduler = Scheduler(self.store, self.specs, invoker=invoker, **self.options)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.scheduler.stop()
        await self.invoker.stop(drain=False)
        await self.store.close()

    async def run(self, now: datetime.datetime) -> list[str]:
        """Fire what is due at `now` and let the invocations run."""
        fired = await self.scheduler.run_due(now)
        async with asyncio.timeout(10):
            await self.invoker.drain()
        return fired


# --- firing at the right times ---------------------------------------------------------------


async def test_rate_fires_once_per_period_with_the_scheduled_event(tmp_path: Path) -> None:
    app, handled = make_app({"report": [("rate(5 minutes)", None)]})
    async with Server(tmp_path, app) as server:
        assert await server.run(at("2024-05-01 11:58")) == []
        fired = await server.run(at("2024-05-01 12:00:01"))
        assert await server.run(at("2024-05-01 12:03")) == []
        fired += await server.run(at("2024-05-01 12:05:00"))
        assert await server.run(at("2024-05-01 12:05:00")) == []  # asked twice at the same moment: still once

        assert handled.times() == ["2024-05-01T12:00:00Z", "2024-05-01T12:05:00Z"]
        event = handled.events[0][1]
        assert event == {
            "version": "0",
            "id": fired[0],
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "000000000000",
            "time": "2024-05-01T12:00:00Z",
            "region": "local",
            "resources": ["arn:aws:events:local:000000000000:rule/report"],
            "detail": {},
        }
        records = await server.invoker.records.query(function="report", limit=10)
        assert sorted(r.request_id for r in records) == sorted(fired)
        assert {r.trigger for r in records} == {"schedule"}


async def test_cron_fires_on_its_days_and_times(tmp_path: Path) -> None:
    app, handled = make_app({"weekdays": [("cron(0 9 ? * MON-FRI *)", None)], "daily": [("30 8 * * *", None)]})
    async with Server(tmp_path, app) as server:
        await server.run(at("2024-05-03 08:00"))  # a Friday: first seen before either fires
        for day in ("2024-05-03", "2024-05-04", "2024-05-05", "2024-05-06"):  # Friday to Monday
            await server.run(at(f"{day} 08:30:02"))
            await server.run(at(f"{day} 09:00:02"))
        assert handled.times("weekdays") == ["2024-05-03T09:00:00Z", "2024-05-06T09:00:00Z"]
        assert handled.times("daily") == [f"2024-05-0{d}T08:30:00Z" for d in (3, 4, 5, 6)]


async def test_a_new_schedule_does_not_fire_for_times_before_it_was_first_seen(tmp_path: Path) -> None:
    app, handled = make_app({"report": [("rate(5 minutes)", None)]})
    async with Server(tmp_path, app) as server:
        assert await server.run(at("2024-05-01 12:03")) == []  # 12:00 was before it existed
        await server.run(at("2024-05-01 12:05:01"))
        assert handled.times() == ["2024-05-01T12:05:00Z"]


async def test_at_fires_once_and_never_again(tmp_path: Path) -> None:
    app, handled = make_app(
        {"launch": [("at(2024-05-01T12:00:00)", None)], "past": [("at(2024-04-01T12:00:00)", None)]}
    )
    async with Server(tmp_path, app) as server:
        assert await server.run(at("2024-05-01 11:59")) == []
        assert len(await server.run(at("2024-05-01 12:00:03"))) == 1
        assert await server.run(at("2024-05-01 12:10")) == []
        statuses = {s.name: s for s in await server.scheduler.next_fires(at("2024-05-01 12:10"))}
        assert statuses["launch"].next_fire is None
        assert statuses["launch"].last_fired == at("2024-05-01 12:00")
        assert statuses["past"].next_fire is None
    async with Server(tmp_path, app) as server:
        assert await server.run(at("2024-05-02 00:00")) == []
    assert handled.times() == ["2024-05-01T12:00:00Z"]


async def test_a_cron_in_paris_follows_the_wall_clock_across_the_spring_dst_change(tmp_path: Path) -> None:
    app, handled = make_app(
        {"morning": [("cron(0 9 * * ? *)", "Europe/Paris")], "night": [("30 2 * * *", "Europe/Paris")]}
    )
    async with Server(tmp_path, app) as server:
        await server.run(at("2024-03-29 12:00"))
        # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC from 31 March; 02:30 does not exist that night.
        for moment in ("2024-03-30 01:30:05", "2024-03-30 08:00:05", "2024-03-31 01:00:05", "2024-03-31 07:00:05"):
            await server.run(at(moment))
        assert await server.run(at("2024-03-31 08:00:05")) == []  # the old UTC time is not a firing any more
        assert handled.times("morning") == ["2024-03-30T08:00:00Z", "2024-03-31T07:00:00Z"]
        # The time skipped by the change fires once, at the first valid time after the gap (03:00 CEST).
        assert handled.times("night") == ["2024-03-30T01:30:00Z", "2024-03-31T01:00:00Z"]
        [morning, night] = await server.scheduler.next_fires(at("2024-03-31 12:00"))
        assert [morning.next_fire, night.next_fire] == [
            datetime.datetime(2024, 4, 1, 9, tzinfo=ZoneInfo("Europe/Paris")),
            datetime.datetime(2024, 4, 1, 2, 30, tzinfo=ZoneInfo("Europe/Paris")),
        ]


# --- durability ------------------------------------------------------------------------------


async def test_a_restart_does_not_fire_an_occurrence_again(tmp_path: Path) -> None:
    app, handled = make_app({"report": [("rate(5 minutes)", None)]})
    async with Server(tmp_path, app) as server:
        await server.run(at("2024-05-01 12:00:00"))
    async with Server(tmp_path, app) as server:
        assert await server.run(at("2024-05-01 12:00:30")) == []
        await server.run(at("2024-05-01 12:05:01"))
    assert handled.times() == ["2024-05-01T12:00:00Z", "2024-05-01T12:05:00Z"]


@pytest.mark.parametrize(
    ("missed", "expected"),
    [
        ("latest", ["12:20"]),
        ("all", ["12:05", "12:10", "12:15", "12:20"]),
        ("skip", []),
    ],
)
async def test_fires_missed_while_down_follow_the_policy(tmp_path: Path, missed: str, expected: list[str]) -> None:
    app, handled = make_app({"report": [("rate(5 minutes)", None)]})
    async with Server(tmp_path, app, missed=missed) as server:
        await server.run(at("2024-05-01 12:00:00"))
    handled.events.clear()
    async with Server(tmp_path, app, missed=missed) as server:  # down from 12:00 to 12:23
        fired = await server.run(at("2024-05-01 12:23"))
        assert sorted(handled.times()) == [f"2024-05-01T{t}:00Z" for t in expected]
        [schedule] = declared_schedules(app.functions)
        assert fired == [occurrence_id(schedule, at(f"2024-05-01 {t}")) for t in expected]
        assert await server.run(at("2024-05-01 12:24")) == []  # caught up: nothing is due twice
        await server.run(at("2024-05-01 12:25:01"))  # back on time: every policy fires this one
        assert handled.times()[-1] == "2024-05-01T12:25:00Z"


async def test_skip_still_fires_an_occurrence_found_within_grace(tmp_path: Path) -> None:
    app, handled = make_app({"report": [("rate(5 minutes)", None)]})
    async with Server(tmp_path, app, missed="skip", grace=30) as server:
        await server.run(at("2024-05-01 12:00:00"))
        await server.run(at("2024-05-01 12:05:29"))  # 29 s late: on time
        await server.run(at("2024-05-01 12:10:31"))  # 31 s late: missed
        await server.run(at("2024-05-01 12:15:01"))
    assert handled.times() == ["2024-05-01T12:00:00Z", "2024-05-01T12:05:00Z", "2024-05-01T12:15:00Z"]


async def test_all_fires_at_most_the_latest_max_catch_up_oldest_first(tmp_path: Path) -> None:
    app, handled = make_app({"tick": [("rate(1 minute)", None)]})
    async with Server(tmp_path, app, missed="all") as server:
        await server.run(at("2024-05-01 12:00:00"))
        handled.events.clear()
        fired = await server.run(at("2024-05-01 15:20:30"))  # 200 minutes down
    [schedule] = declared_schedules(app.functions)
    kept = [later(at("2024-05-01 13:41"), 60 * i) for i in range(MAX_CATCH_UP)]  # the latest 100, to 15:20
    assert fired == [occurrence_id(schedule, moment) for moment in kept]  # queued oldest first
    assert sorted(handled.times()) == [moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in kept]


async def test_latest_after_a_long_outage_fires_the_latest_time_only(tmp_path: Path) -> None:
    app, handled = make_app({"tick": [("rate(1 minute)", None)], "weekly": [("cron(0 6 ? * MON *)", None)]})
    async with Server(tmp_path, app) as server:
        await server.run(at("2023-05-01 00:00:30"))
        await server.run(at("2024-05-01 12:00:30"))  # a year later: no walk through every minute
    assert handled.times("tick") == ["2024-05-01T12:00:00Z"]
    assert handled.times("weekly") == ["2024-04-29T06:00:00Z"]


async def test_two_servers_on_one_store_fire_each_occurrence_once(tmp_path: Path) -> None:
    app, handled = make_app({"report": [("rate(5 minutes)", None)]})
    async with Server(tmp_path, app) as one, Server(tmp_path, app) as two:
        first = await one.run(at("2024-05-01 12:00:00"))
        assert await two.run(at("2024-05-01 12:00:01")) == []
        for minute in (5, 10, 15):
            moment = at(f"2024-05-01 12:{minute:02d}:00")
            both = await asyncio.gather(one.scheduler.run_due(moment), two.scheduler.run_due(moment))
            assert sorted(len(ids) for ids in both) == [0, 1]
        async with asyncio.timeout(10):
            await one.invoker.drain()
            await two.invoker.drain()
    assert len(first) == 1
    assert handled.times() == [f"2024-05-01T12:{m:02d}:00Z" for m in (0, 5, 10, 15)]


@pytest.mark.parametrize("after_enqueue", [False, True], ids=["before-enqueue", "after-enqueue"])
async def test_a_server_dying_mid_fire_fires_once_after_the_claim_lapses(tmp_path: Path, after_enqueue: bool) -> None:
    app, handled = make_app({"report": [("rate(5 minutes)", None)]})
    noon = at("2024-05-01 12:00:00")

    def crashing(invoker: Invoker) -> ScheduleInvoker:
        return CrashingInvoker(invoker, after_enqueue=after_enqueue)

    async with Server(tmp_path, app, wrap=crashing) as dying:
        with pytest.raises(Crash):
            await dying.scheduler.run_due(noon)
        async with asyncio.timeout(10):
            await dying.invoker.drain()
    assert len(handled.events) == (1 if after_enqueue else 0)
    async with Server(tmp_path, app) as restarted:
        assert await restarted.run(later(noon, CLAIM_LEASE - 1)) == []  # the dead server's claim still holds
        fired = await restarted.run(later(noon, CLAIM_LEASE + 1))
        assert await restarted.run(later(noon, CLAIM_LEASE + 2)) == []
    # Queued again on takeover, with the same dedup id: the queue dropped the repeat.
    assert handled.times() == ["2024-05-01T12:00:00Z"]
    assert fired == [occurrence_id(declared_schedules(app.functions)[0], noon)]


async def test_the_same_dedup_id_queues_one_invocation(tmp_path: Path) -> None:
    app, handled = make_app({"report": [("rate(5 minutes)", None)]})
    async with Server(tmp_path, app) as server:
        for _ in range(3):
            await server.invoker.invoke_async("report", {"time": "once"}, dedup_id="occurrence-1")
        async with asyncio.timeout(10):
            await server.invoker.drain()
        with pytest.raises(InvalidInputError, match="dedup_id must be 1 to 128 printable characters"):
            await server.invoker.invoke_async("report", {}, dedup_id="x" * 129)
    assert handled.times() == ["once"]


# --- steering --------------------------------------------------------------------------------


async def test_pause_and_resume_hold_across_servers_and_restarts(tmp_path: Path) -> None:
    app, handled = make_app({"report": [("rate(5 minutes)", None)]})
    async with Server(tmp_path, app) as one, Server(tmp_path, app) as two:
        await one.run(at("2024-05-01 12:00:00"))
        await one.scheduler.pause("report", now=at("2024-05-01 12:01"))
        assert await two.run(at("2024-05-01 12:05:01")) == []  # paused on one, so paused on every server
    async with Server(tmp_path, app) as server:
        [status] = await server.scheduler.next_fires(at("2024-05-01 12:06"))
        assert (status.paused, status.next_fire) == (True, None)
        assert await server.run(at("2024-05-01 12:10:01")) == []
        await server.scheduler.resume("report", now=at("2024-05-01 12:12"))
        # 12:05 and 12:10 fell while paused: resuming does not make them missed fires.
        assert await server.run(at("2024-05-01 12:13")) == []
        await server.run(at("2024-05-01 12:15:01"))
        with pytest.raises(ScheduleNotFoundError) as caught:
            await server.scheduler.pause("reprot")
    assert str(caught.value) == "no schedule named 'reprot'; the app's schedules are 'report'"
    assert handled.times() == ["2024-05-01T12:00:00Z", "2024-05-01T12:15:00Z"]


async def test_next_fires_lists_every_schedule_with_its_name(tmp_path: Path) -> None:
    app, handled = make_app({"report": [("rate(1 hour)", None), ("cron(0 9 * * ? *)", "Europe/Paris")]})
    async with Server(tmp_path, app) as server:
        before = await server.scheduler.next_fires(at("2024-05-01 06:30"))
        assert [(s.name, s.first_seen, s.next_fire) for s in before] == [
            ("report#1", None, at("2024-05-01 07:00")),
            ("report#2", None, at("2024-05-01 07:00")),  # 09:00 in Paris
        ]
        await server.run(at("2024-05-01 06:59"))
        await server.run(at("2024-05-01 07:00:00"))
        after = await server.scheduler.next_fires(at("2024-05-01 07:00:00"))
        seen, fired = at("2024-05-01 06:59"), at("2024-05-01 07:00")
        assert [(s.name, s.expression, s.tz, s.first_seen, s.last_fired, s.next_fire) for s in after] == [
            ("report#1", "rate(1 hour)", None, seen, fired, at("2024-05-01 08:00")),
            ("report#2", "cron(0 9 * * ? *)", "Europe/Paris", seen, fired, at("2024-05-02 07:00")),
        ]
    # Each schedule of a function is its own rule in the event's resources.
    assert sorted((e["time"], e["resources"][0]) for _, e in handled.events) == [
        ("2024-05-01T07:00:00Z", "arn:aws:events:local:000000000000:rule/report#1"),
        ("2024-05-01T07:00:00Z", "arn:aws:events:local:000000000000:rule/report#2"),
    ]


async def test_update_keeps_unchanged_schedules_and_drops_removed_ones(tmp_path: Path) -> None:
    v1, handled = make_app({"report": [("rate(5 minutes)", None)], "cleanup": [("rate(10 minutes)", None)]})
    # The new version's handlers record into the same list, so one list shows both versions' work.
    v2, _ = make_app({"report": [("rate(5 minutes)", None)], "digest": [("rate(15 minutes)", None)]}, handled)
    async with Server(tmp_path, {**v1.functions, **v2.functions}) as server:
        scheduler = Scheduler(server.store, v1.functions, invoker=server.invoker)
        await scheduler.run_due(at("2024-05-01 12:00:00"))
        await scheduler.pause("cleanup", now=at("2024-05-01 12:01"))
        await scheduler.update(v2.functions)
        assert [s.name for s in scheduler.schedules] == ["report", "digest"]
        assert await server.store.kv.get(SCHEDULES_NAMESPACE, "state/cleanup UTC rate(10 minutes)") is None
        assert await scheduler.run_due(at("2024-05-01 12:02")) == []  # report's 12:00 is not fired again
        assert len(await scheduler.run_due(at("2024-05-01 12:15:00"))) == 2  # report (latest) and digest
        await scheduler.update(v1.functions)  # cleanup comes back as a new schedule: not paused, no catch-up
        [report, cleanup] = await scheduler.next_fires(at("2024-05-01 12:16"))
        assert (report.last_fired, cleanup.paused, cleanup.first_seen) == (at("2024-05-01 12:15"), False, None)
        assert await scheduler.run_due(at("2024-05-01 12:16")) == []
        async with asyncio.timeout(10):
            await server.invoker.drain()
    assert sorted((name, event["time"]) for name, event in handled.events) == [
        ("cleanup", "2024-05-01T12:00:00Z"),
        ("digest", "2024-05-01T12:15:00Z"),
        ("report", "2024-05-01T12:00:00Z"),
        ("report", "2024-05-01T12:15:00Z"),
    ]


async def test_update_with_a_bad_schedule_changes_nothing(tmp_path: Path) -> None:
    app, _ = make_app({"report": [("rate(5 minutes)", None)]})
    spec = app.functions["report"]
    broken = {
        "report": FunctionSpec(
            "report", spec.handler, spec.ref, FunctionSettings(), (ScheduleTrigger("rate(0 minutes)"),)
        )
    }
    async with Server(tmp_path, app) as server:
        with pytest.raises(DeclarationError, match=r"function 'report': invalid schedule: 'rate\(0 minutes\)'"):
            await server.scheduler.update(broken)
        assert [s.expression for s in server.scheduler.schedules] == ["rate(5 minutes)"]


async def test_the_background_loop_fires_what_is_due(tmp_path: Path) -> None:
    app, handled = make_app({"report": [("rate(5 minutes)", None)]})
    noon = at("2024-05-01 12:00:00").timestamp()
    async with Server(tmp_path, app, clock=lambda: noon, tick=0.01) as server:
        await server.scheduler.start()
        assert await asyncio.to_thread(handled.first.wait, 10)
        await server.scheduler.stop()
        assert [s.last_fired for s in await server.scheduler.next_fires()] == [at("2024-05-01 12:00")]
    assert handled.times() == ["2024-05-01T12:00:00Z"]


# --- bad input -------------------------------------------------------------------------------


async def test_an_unknown_missed_policy_is_refused_with_the_choices(tmp_path: Path) -> None:
    app, _ = make_app({"report": [("rate(5 minutes)", None)]})
    async with Server(tmp_path, app) as server:
        with pytest.raises(InvalidInputError) as caught:
            Scheduler(server.store, app.functions, invoker=server.invoker, missed="earliest")
    assert str(caught.value) == (
        "Scheduler(missed='earliest'): the missed-fire policy is 'latest' (fire once for the latest missed time),"
        " 'all' (each missed time, at most 100) or 'skip' (none)"
    )


@pytest.mark.parametrize("tick", [0, -1, 61, float("nan"), float("inf"), "1", True, None])
async def test_a_bad_tick_is_refused(tmp_path: Path, tick: Any) -> None:
    app, _ = make_app({"report": [("rate(5 minutes)", None)]})
    async with Server(tmp_path, app) as server:
        with pytest.raises(InvalidInputError) as caught:
            Scheduler(server.store, app.functions, invoker=server.invoker, tick=tick)
    assert str(caught.value) == (
        f"Scheduler(tick={tick!r}): the tick is how often due schedules are looked for, from more than 0 to 60 seconds"
    )


async def test_grace_below_the_tick_and_naive_times_are_refused(tmp_path: Path) -> None:
    app, _ = make_app({"report": [("rate(5 minutes)", None)]})
    async with Server(tmp_path, app) as server:
        with pytest.raises(InvalidInputError, match=r"^Scheduler\(grace=0.5\): grace must be from the tick \(1 s\)"):
            Scheduler(server.store, app.functions, invoker=server.invoker, grace=0.5)
        with pytest.raises(
            InvalidInputError, match=r"run_due\(now=datetime.datetime\(2024, 5, 1, 12, 0\)\): pass an aware"
        ):
            await server.scheduler.run_due(datetime.datetime(2024, 5, 1, 12, 0))


# --- which occurrences are due (pure) --------------------------------------------------------

WINDOWS = [
    ("rate(1 minute)", None, "2024-05-01 12:00:30", "2024-05-03 07:13:10"),
    ("rate(7 minutes)", None, "2024-05-01 00:00", "2024-05-09 00:00"),
    ("cron(0 9 ? * MON-FRI *)", None, "2024-04-26 10:00", "2024-05-14 08:59"),
    ("*/15 * * * *", "Europe/Paris", "2024-03-30 20:00", "2024-04-01 04:00"),  # across the DST change
    ("cron(0 12 L * ? *)", None, "2022-11-15 00:00", "2024-05-31 12:00"),  # last day of the month
]


@pytest.mark.parametrize(("expression", "tz", "start", "end"), WINDOWS, ids=[w[0] for w in WINDOWS])
def test_the_latest_occurrences_found_by_bisection_are_those_a_walk_finds(
    expression: str, tz: str | None, start: str, end: str
) -> None:
    schedule = parse_schedule(expression, tz)
    walked = []
    moment = schedule.next_after(at(start))
    while moment is not None and moment <= at(end):
        walked.append(moment)
        moment = schedule.next_after(moment)
    assert len(walked) > 10
    assert latest_until(schedule, walked[0], at(end)) == walked[-1]
    assert latest_ones(schedule, walked[0], at(end), 10) == walked[-10:]
    assert latest_ones(schedule, walked[0], at(end), len(walked) + 5) == walked


@pytest.mark.parametrize(
    ("missed", "now", "fire", "left_out"),
    [
        ("latest", "12:00:30", ["12:00"], False),
        ("latest", "12:31", ["12:30"], True),
        ("all", "12:31", ["12:00", "12:10", "12:20", "12:30"], False),
        ("skip", "12:00:59", ["12:00"], False),
        ("skip", "12:32", [], True),
        ("skip", "12:31", ["12:30"], True),
        ("latest", "11:59", [], False),
    ],
)
def test_due_applies_the_missed_fire_policy(missed: Any, now: str, fire: list[str], left_out: bool) -> None:
    schedule = parse_schedule("rate(10 minutes)")
    state = State.new(at("2024-05-01 11:55"))
    result = due(schedule, state, at(f"2024-05-01 {now}"), missed=missed, grace=60, limit=100)
    assert (result.fire, result.left_out) == ([at(f"2024-05-01 {t}") for t in fire], left_out)
    assert (
        due(
            schedule,
            State(state.first_seen, state.after, paused=True),
            at("2024-05-01 12:31"),
            missed=missed,
            grace=60,
            limit=100,
        ).fire
        == []
    )
