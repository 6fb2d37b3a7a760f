"""Schedule expressions: parsing with precise reasons, and when each fires next (pure, table-driven)."""

from __future__ import annotations

import datetime
import re
from zoneinfo import ZoneInfo

import pytest

from triggerfish.schedule import parse_schedule, parse_timezone

UTC = datetime.UTC
NOW = datetime.datetime(2026, 11, 22, 8, 7, 30, tzinfo=UTC)  # a Sunday


def at(
    year: int, month: int, day: int, hour: int, minute: int, second: int = 0, *, tz: datetime.tzinfo = UTC
) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=tz)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("rate(5 minutes)", at(2026, 11, 22, 8, 10)),
        ("rate(1 minute)", at(2026, 11, 22, 8, 8)),
        ("rate(1 hour)", at(2026, 11, 22, 9, 0)),
        ("rate(2 days)", at(2026, 11, 23, 0, 0)),  # epoch-anchored: even days since 1970-01-01
        ("rate(10 seconds)", at(2026, 11, 22, 8, 7, 40)),  # Triggerfish's own unit: not EventBridge's
        ("rate(1 second)", at(2026, 11, 22, 8, 7, 31)),
        ("cron(0 3 * * ? *)", at(2026, 11, 23, 3, 0)),
        ("cron(0/15 * * * ? *)", at(2026, 11, 22, 8, 15)),
        ("cron(0 9 ? * MON-FRI *)", at(2026, 11, 23, 9, 0)),
        ("cron(0 9 ? * 2-6 *)", at(2026, 11, 23, 9, 0)),  # AWS: 2 = MON, 6 = FRI
        ("cron(0 9 ? * 1 *)", at(2026, 11, 22, 9, 0)),  # AWS: 1 = SUN, and today is a Sunday
        ("cron(0 9 ? * 6L *)", at(2026, 11, 27, 9, 0)),  # last Friday of November
        ("cron(0 9 ? * 6#3 *)", at(2026, 12, 18, 9, 0)),  # third Friday of December
        ("cron(0 0 L * ? *)", at(2026, 11, 30, 0, 0)),  # last day of the month
        ("cron(0 0 1 JAN ? 2028)", at(2028, 1, 1, 0, 0)),  # the year field skips ahead
        ("cron(0 0 1 1 ? 2026,2029-2030)", at(2029, 1, 1, 0, 0)),
        ("0 3 * * *", at(2026, 11, 23, 3, 0)),
        ("*/20 * * * *", at(2026, 11, 22, 8, 20)),
        ("0 12 * * 0", at(2026, 11, 22, 12, 0)),  # standard cron: 0 = Sunday
        ("0 12 * * sun", at(2026, 11, 22, 12, 0)),
        ("0 12 * * 1", at(2026, 11, 23, 12, 0)),
        ("at(2026-12-01T09:00:00)", at(2026, 12, 1, 9, 0)),
    ],
)
def test_next_firing(expression: str, expected: datetime.datetime) -> None:
    fired = parse_schedule(expression).next_after(NOW)
    assert fired == expected


def test_next_after_is_strictly_after() -> None:
    schedule = parse_schedule("rate(5 minutes)")
    on_the_dot = at(2026, 11, 22, 8, 10)
    assert schedule.next_after(on_the_dot) == at(2026, 11, 22, 8, 15)
    assert parse_schedule("cron(0 3 * * ? *)").next_after(at(2026, 11, 23, 3, 0)) == at(2026, 11, 24, 3, 0)


def test_naive_moments_are_utc() -> None:
    assert parse_schedule("rate(1 hour)").next_after(datetime.datetime(2026, 1, 1, 0, 30)) == at(2026, 1, 1, 1, 0)


def test_schedules_that_never_fire_again() -> None:
    assert parse_schedule("at(2020-01-01T00:00:00)").next_after(NOW) is None
    assert parse_schedule("cron(0 0 1 1 ? 2020-2025)").next_after(NOW) is None


def test_time_zone_applies_to_cron_and_at() -> None:
    paris = ZoneInfo("Europe/Paris")
    fired = parse_schedule("cron(0 9 * * ? *)", tz="Europe/Paris").next_after(NOW)
    assert fired == at(2026, 11, 23, 9, 0, tz=paris)
    assert fired is not None
    assert fired.astimezone(UTC).hour == 8
    once = parse_schedule("at(2026-12-01T09:00:00)", tz="America/New_York").next_after(NOW)
    assert once is not None
    assert once.astimezone(UTC) == at(2026, 12, 1, 14, 0)


def test_cron_across_a_daylight_saving_change_still_fires_daily() -> None:
    schedule = parse_schedule("30 2 * * *", tz="Europe/Paris")  # 02:30 does not exist on 2026-03-29
    start = at(2026, 3, 28, 12, 0, tz=ZoneInfo("Europe/Paris"))
    first = schedule.next_after(start)
    assert first is not None
    second = schedule.next_after(first)
    assert second is not None
    assert first.date() == datetime.date(2026, 3, 29)
    assert second.date() == datetime.date(2026, 3, 30)
    assert (second.hour, second.minute) == (2, 30)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("", "a schedule is a string"),
        ("every day", "is not a schedule"),
        ("rate(0 minutes)", "at least 1"),
        ("rate(0 seconds)", "at least 1"),
        ("rate(5 weeks)", "unknown unit 'weeks'"),
        ("rate(1.5 hours)", "whole VALUE"),
        ("rate(-1 minutes)", "whole VALUE"),
        ("cron(0 3 * * *)", "AWS cron has 6 fields"),
        ("cron(0 3 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 3 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(60 3 * * ? *)", "minutes field"),
        ("cron(0 24 * * ? *)", "hours field"),
        ("cron(0 3 32 * ? *)", "day-of-month field"),
        ("cron(0 3 * 13 ? *)", "month field"),
        ("cron(0 3 ? * 8 *)", "day-of-week field"),
        ("cron(0 3 ? * 0 *)", "which is not in 1-7 or SUN-SAT"),  # AWS has no day 0
        ("cron(0 3 * * ? 1969)", "year field"),
        ("cron(0 3 ? * MON-XYZ *)", "'XYZ'"),
        ("cron(5-1 * * * ? *)", "runs backwards"),
        ("cron(*/0 * * * ? *)", "step"),
        ("cron(0,,5 * * * ? *)", "empty item"),
        ("cron(? * * * ? *)", "cannot be '?'"),
        ("cron(0 3 ? * 6#9 *)", "day-of-week field"),
        ("0 3 * *", "is not a schedule"),
        ("0 3 * * 8", "day-of-week field"),
        ("0 3 ? * *", "cannot be '?'"),
        ("at(2026-13-01T00:00:00)", "at(YYYY-MM-DDThh:mm:ss)"),
        ("at(2026-12-01T09:00:00+02:00)", "leave the offset out"),
        ("cron(" + "1," * 200 + "1 * * * ? *)", "at most 256 characters"),
    ],
)
def test_bad_expressions_say_why(expression: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_schedule(expression)


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "../../etc/passwd", "/etc/localtime", "Europe/"])
def test_bad_time_zones(tz: str) -> None:
    with pytest.raises(ValueError, match="time zone"):
        parse_timezone(tz)


def test_expression_is_kept_as_written() -> None:
    schedule = parse_schedule("  rate(5 minutes) ")
    assert schedule.expression == "rate(5 minutes)"
    assert schedule.kind == "rate"
    assert schedule.period == 300.0
