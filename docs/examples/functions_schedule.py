"""Schedule expressions: rate, AWS cron, five-field cron and at(), and when they fire next."""

from datetime import UTC, datetime

from triggerfish.schedule import parse_schedule

now = datetime(2026, 11, 23, 8, 7, tzinfo=UTC)  # a Monday

assert parse_schedule("rate(5 minutes)").next_after(now) == datetime(2026, 11, 23, 8, 10, tzinfo=UTC)

# AWS cron: six fields, '?' in day-of-month or day-of-week, days counted 1 = SUN .. 7 = SAT.
weekdays = parse_schedule("cron(0 9 ? * MON-FRI *)")
assert weekdays.next_after(now) == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
last_friday = parse_schedule("cron(0 9 ? * 6L *)")
assert last_friday.next_after(now) == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

# Standard five-field cron, read in a time zone.
paris = parse_schedule("0 3 * * *", tz="Europe/Paris").next_after(now)
assert paris.isoformat() == "2026-11-24T03:00:00+01:00"

# Once; afterwards it never fires again.
once = parse_schedule("at(2026-12-01T09:00:00)")
assert once.next_after(now) == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
assert once.next_after(datetime(2027, 1, 1, tzinfo=UTC)) is None

try:
    parse_schedule("cron(0 3 * 13 ? *)")
except ValueError as error:
    reason = str(error)
else:
    raise AssertionError("month 13 was accepted")
assert "the month field '13' has '13', which is not in 1-12 or JAN-DEC" in reason
