"""Schedule expressions: `rate(...)`, AWS `cron(...)`, standard 5-field cron, and one-off `at(...)`.

Pure: parsing and "when does it fire next?" only; the scheduler that fires
them lives elsewhere. Parsing checks every field and says which one is
wrong and why, so a bad schedule fails when the app is declared, not at
03:00 some night.

- `rate(5 minutes)`: every 5 minutes (units minute(s), hour(s), day(s)).
  Firings are anchored to the Unix epoch in UTC, so a restarted scheduler
  keeps the same rhythm: `rate(1 hour)` fires on the hour. Triggerfish also
  takes second(s) (`rate(10 seconds)`), which EventBridge does not: for
  polling and for tests; such an app does not port to EventBridge as it is.
- `cron(0 3 * * ? *)`: AWS EventBridge's six fields, minutes hours
  day-of-month month day-of-week year. One of day-of-month and day-of-week
  must be `?`. Day-of-week counts 1 = SUN to 7 = SAT, as AWS does; `L`,
  `W` and `#` work as AWS documents them.
- `0 3 * * *`: standard five-field cron (day-of-week 0 or 7 = Sunday).
- `at(2026-12-01T09:00:00)`: once, at that wall-clock time.

Times are read in `tz` (an IANA name such as "Europe/Paris"), UTC when none.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Literal

_RATE = re.compile(r"^rate\(\s*(\d+)\s+([a-z]+)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_AT = re.compile(r"^at\((.*)\)$")
_UNITS = {
    "second": 1,
    "seconds": 1,
    "minute": 60,
    "minutes": 60,
    "hour": 3600,
    "hours": 3600,
    "day": 86400,
    "days": 86400,
}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
#: Longest expression accepted, as EventBridge's ScheduleExpression.
MAX_EXPRESSION_LENGTH = 256
# A year field can leave long gaps; searching further than this finds nothing that will ever matter.
_YEAR_LIMIT = 2199

ScheduleKind = Literal["rate", "cron", "at"]


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule expression; `next_after(moment)` says when it fires next."""

    expression: str
    kind: ScheduleKind
    tz: str | None = None
    #: rate: the period in seconds.
    period: float = 0.0
    #: cron: the expression in croniter's five-field dialect; years, when limited, kept apart.
    cron: str = ""
    years: frozenset[int] | None = None
    #: at: the one moment, timezone-aware.
    moment: datetime.datetime | None = None
    _zone: datetime.tzinfo = field(default=datetime.UTC, repr=False, compare=False)

    def next_after(self, after: datetime.datetime) -> datetime.datetime | None:
        """The first firing strictly after `after` (naive means UTC), in the schedule's time zone.

        None when it will never fire again (an `at()` in the past, a cron whose years are over).
        """
        if after.tzinfo is None:
            after = after.replace(tzinfo=datetime.UTC)
        if self.kind == "at":
            assert self.moment is not None
            return self.moment if self.moment > after else None
        if self.kind == "rate":
            elapsed = (after - _EPOCH).total_seconds()
            periods = int(elapsed // self.period) + 1
            return (_EPOCH + datetime.timedelta(seconds=periods * self.period)).astimezone(self._zone)
        return self._next_cron(after.astimezone(self._zone))

    def _next_cron(self, after: datetime.datetime) -> datetime.datetime | None:
        from croniter import croniter  # not at the top: see _checked_by_croniter

        start = after
        while start.year <= _YEAR_LIMIT:
            candidate: datetime.datetime = croniter(self.cron, start).get_next(datetime.datetime)
            if self.years is None or candidate.year in self.years:
                return candidate
            later = [year for year in self.years if year > candidate.year]
            if not later:
                return None
            # Jump to the last minute before the next allowed year, so its first firing is found.
            start = datetime.datetime(min(later), 1, 1, tzinfo=self._zone) - datetime.timedelta(minutes=1)
        return None


def parse_schedule(expression: str, tz: str | None = None) -> Schedule:
    """Parse a schedule expression; raises ValueError naming the part that is wrong and why.

    parse_schedule("rate(5 minutes)").period == 300.0
    parse_schedule("cron(0 3 ? * MON-FRI *)", tz="Europe/Paris").next_after(now)
    """
    zone = parse_timezone(tz)
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError(
            f"a schedule is a string like 'rate(5 minutes)', 'cron(0 3 * * ? *)', '0 3 * * *' or "
            f"'at(2026-12-01T09:00:00)', not {expression!r}"
        )
    text = expression.strip()
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ValueError(
            f"a schedule expression is at most {MAX_EXPRESSION_LENGTH} characters (as on AWS), not {len(text)}"
        )
    if match := _RATE.match(text):
        return Schedule(text, "rate", tz, period=_rate_period(text, match), _zone=zone)
    if text.startswith("rate("):
        raise ValueError(f"{text!r}: write rate(VALUE UNIT) with a whole VALUE, e.g. rate(5 minutes) or rate(1 hour)")
    if match := _CRON.match(text):
        cron, years = _aws_cron(text, match.group(1))
        return Schedule(text, "cron", tz, cron=cron, years=years, _zone=zone)
    if match := _AT.match(text):
        return Schedule(text, "at", tz, moment=_at_moment(text, match.group(1), zone), _zone=zone)
    fields = text.split()
    if len(fields) == 5 and not text.startswith(("cron", "at", "rate")):
        _check_fields(text, fields, _STANDARD_FIELDS)
        return Schedule(text, "cron", tz, cron=_checked_by_croniter(text, " ".join(fields)), _zone=zone)
    raise ValueError(
        f"{text!r} is not a schedule: use rate(5 minutes), cron(0 3 * * ? *) (AWS, six fields), "
        "a five-field cron like '0 3 * * *', or at(2026-12-01T09:00:00)"
    )


def parse_timezone(tz: str | None) -> datetime.tzinfo:
    """The zone named `tz` (IANA, e.g. "America/New_York"); UTC for None."""
    if tz is None:
        return datetime.UTC
    if not isinstance(tz, str) or not tz or tz.startswith("/") or ".." in tz:
        raise ValueError(f"time zone {tz!r} is not an IANA name like 'Europe/Paris' or 'UTC'")
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}: use an IANA name like 'Europe/Paris' or 'UTC'") from None


def _rate_period(text: str, match: re.Match[str]) -> float:
    value, unit = int(match.group(1)), match.group(2)
    if unit not in _UNITS:
        raise ValueError(f"{text!r}: unknown unit {unit!r}; use second(s), minute(s), hour(s) or day(s)")
    if value < 1:
        raise ValueError(f"{text!r}: the rate must be at least 1 {unit}")
    return float(value * _UNITS[unit])


def _at_moment(text: str, value: str, zone: datetime.tzinfo) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{text!r}: write at(YYYY-MM-DDThh:mm:ss), e.g. at(2026-12-01T09:00:00)") from None
    if moment.tzinfo is not None:
        raise ValueError(f"{text!r}: leave the offset out of at(); give the time zone with tz=")
    return moment.replace(tzinfo=zone)


# --- cron fields -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    #: the value the first name stands for (JAN = 1, SUN = 1 in AWS, SUN = 0 in standard cron)
    names_from: int = 0
    question: bool = False
    special: str = ""  # characters allowed beyond digits and names: "LW" or "L#"


_AWS_FIELDS = (
    _Field("minutes", 0, 59),
    _Field("hours", 0, 23),
    _Field("day-of-month", 1, 31, question=True, special="LW"),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day-of-week", 1, 7, _DAYS, 1, question=True, special="L#"),
    _Field("year", 1970, _YEAR_LIMIT),
)
_STANDARD_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31, special="LW"),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day-of-week", 0, 7, _DAYS, 0, special="L#"),
)
_ITEM = re.compile(r"^(\*|[A-Z0-9]+)(?:-([A-Z0-9]+))?(?:/(\d+))?$")


def _aws_cron(text: str, body: str) -> tuple[str, frozenset[int] | None]:
    fields = body.upper().split()
    if len(fields) != 6:
        raise ValueError(
            f"{text!r}: AWS cron has 6 fields (minutes hours day-of-month month day-of-week year), "
            f"this has {len(fields)}; e.g. cron(0 3 * * ? *). For 5-field cron, leave out cron( )"
        )
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ValueError(
            f"{text!r}: exactly one of day-of-month and day-of-week must be '?', "
            "e.g. cron(0 3 * * ? *) for every day or cron(0 3 ? * MON *) for Mondays"
        )
    _check_fields(text, fields, _AWS_FIELDS)
    years = None if year == "*" else frozenset(_expand(year, _AWS_FIELDS[5]))
    cron = " ".join([minutes, hours, "*" if dom == "?" else dom, month, "*" if dow == "?" else _aws_dow(dow)])
    return _checked_by_croniter(text, cron), years


def _aws_dow(value: str) -> str:
    """AWS counts days of the week 1 = SUN .. 7 = SAT; croniter 0 = SUN; and AWS's `6L` is croniter's `L5`."""

    def shift(token: str) -> str:
        return str(int(token) - 1) if token.isdigit() else token

    items = []
    for item in value.split(","):
        if item.endswith("L") and item != "L":
            items.append("L" + shift(item[:-1]))
        elif "#" in item:
            day, _, nth = item.partition("#")
            items.append(f"{shift(day)}#{nth}")
        else:
            days, slash, step = item.partition("/")
            items.append(re.sub(r"\d+", lambda m: shift(m.group(0)), days) + slash + step)
    return ",".join(items)


def _check_fields(text: str, fields: list[str], specs: tuple[_Field, ...]) -> None:
    if len(fields) != len(specs):
        raise ValueError(f"{text!r}: cron has {len(specs)} fields here, this has {len(fields)}")
    for value, spec in zip(fields, specs, strict=True):
        reason = _field_problem(value.upper(), spec)
        if reason:
            raise ValueError(f"{text!r}: the {spec.name} field {value!r} {reason}")


def _field_problem(value: str, spec: _Field) -> str | None:
    if value == "?":
        return None if spec.question else "cannot be '?' (only day-of-month and day-of-week can)"
    for item in value.split(","):
        if not item:
            return "has an empty item between commas"
        if spec.special and _special_ok(item, spec):
            continue
        match = _ITEM.match(item)
        if match is None:
            return f"has {item!r}, which is not a number, a range a-b, a step */n or a name"
        start, end, step = match.groups()
        for token in (start, end):
            if token is None or token == "*":
                continue
            number = _number(token, spec)
            if number is None:
                names = f" or {spec.names[0]}-{spec.names[-1]}" if spec.names else ""
                return f"has {token!r}, which is not in {spec.low}-{spec.high}{names}"
        if start == "*" and end is not None:
            return f"has {item!r}; a range is a-b, not *-b"
        if end is not None and (_number(start, spec) or 0) > (_number(end, spec) or 0):
            return f"has the range {item!r}, which runs backwards"
        if step is not None and not 1 <= int(step) <= spec.high:
            return f"has the step /{step}; use 1 to {spec.high}"
    return None


def _special_ok(item: str, spec: _Field) -> bool:
    if "W" in spec.special:  # day-of-month: L, LW, 15W
        if item in ("L", "LW"):
            return True
        if item.endswith("W") and item[:-1].isdigit():
            return spec.low <= int(item[:-1]) <= spec.high
        return False
    # day-of-week: L, 6L (last Friday in AWS), 6#3 (third Friday)
    if item == "L":
        return True
    if item.endswith("L"):
        return _number(item[:-1], spec) is not None
    if "#" in item:
        day, _, nth = item.partition("#")
        return _number(day, spec) is not None and nth.isdigit() and 1 <= int(nth) <= 5
    return False


def _number(token: str, spec: _Field) -> int | None:
    if token.isdigit():
        number = int(token)
        return number if spec.low <= number <= spec.high else None
    if token in spec.names:
        return spec.names_from + spec.names.index(token)
    return None


def _expand(value: str, spec: _Field) -> list[int]:
    numbers: list[int] = []
    for item in value.split(","):
        match = _ITEM.match(item)
        assert match is not None  # checked by _field_problem
        start, end, step = match.groups()
        low = spec.low if start == "*" else int(start)
        high = spec.high if start == "*" or (end is None and step) else int(end or start)
        numbers.extend(range(low, high + 1, int(step or 1)))
    return numbers


def _checked_by_croniter(text: str, cron: str) -> str:
    # croniter (and the dateutil it imports) is loaded when a cron schedule is declared or comes due, not when
    # this module is: every app imports it, most declare no cron, and each process that loads one would pay for it.
    from croniter import croniter

    if not croniter.is_valid(cron):
        raise ValueError(f"{text!r} is not a valid cron expression")
    return cron
