"""A schedule's durable state record, and which of its occurrences are due under a missed-fire policy (pure).

The scheduler (`triggerfish.triggers.schedules`) keeps one `State` per
schedule in the store and asks `due()` what to fire; nothing here does I/O.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

import orjson

from triggerfish.schedule import Schedule

MissedPolicy = Literal["latest", "all", "skip"]
MICROSECOND = datetime.timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class State:
    first_seen: datetime.datetime
    #: Occurrences strictly after this are due.
    after: datetime.datetime
    last_fired: datetime.datetime | None = None
    paused: bool = False
    #: A claim: the occurrences being fired, by whom, until when.
    pending: tuple[datetime.datetime, ...] = ()
    owner: str | None = None
    lease_until: datetime.datetime | None = None

    @classmethod
    def new(cls, now: datetime.datetime) -> State:
        # An occurrence at exactly the moment a schedule is first seen is not "before" it: it fires.
        return cls(first_seen=now, after=now - MICROSECOND)

    def encode(self, function: str, expression: str, tz: str | None) -> bytes:
        # The schedule's identity is written too, so a record read by hand (or by the control API) says whose it is.
        return orjson.dumps(
            {
                "function": function,
                "expression": expression,
                "tz": tz,
                "first_seen": iso(self.first_seen),
                "after": iso(self.after),
                "last_fired": None if self.last_fired is None else iso(self.last_fired),
                "paused": self.paused,
                "pending": [iso(moment) for moment in self.pending],
                "owner": self.owner,
                "lease_until": None if self.lease_until is None else iso(self.lease_until),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> State | None:
        """The state in a record; None when the record is not one (the scheduler then starts afresh)."""
        try:
            document = orjson.loads(data)
            return cls(
                first_seen=_parse(document["first_seen"]),
                after=_parse(document["after"]),
                last_fired=None if document["last_fired"] is None else _parse(document["last_fired"]),
                paused=bool(document["paused"]),
                pending=tuple(_parse(moment) for moment in document["pending"]),
                owner=None if document["owner"] is None else str(document["owner"]),
                lease_until=None if document["lease_until"] is None else _parse(document["lease_until"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class Due:
    """What to do now: fire `fire` (oldest first), and how many due times the policy left out."""

    fire: list[datetime.datetime]
    #: Due times not fired: older than the latest ("latest"), beyond the cap ("all"), or late ("skip").
    left_out: bool = False
    #: Under "skip" with nothing on time: move `after` here, so the skipped times stop being due.
    skip_to: datetime.datetime | None = None


def due(
    schedule: Schedule,
    state: State,
    now: datetime.datetime,
    *,
    missed: MissedPolicy,
    grace: float,
    limit: int,
) -> Due:
    """The occurrences of `schedule` due at `now` that the missed-fire policy fires.

    "latest": the latest due one; "all": every due one, or the latest
    `limit` of them; "skip": the latest, only if `now` is within `grace`
    seconds of it. Nothing while paused.
    """
    if state.paused:
        return Due([])
    first = schedule.next_after(state.after)
    if first is None or first > now:
        return Due([])
    if missed == "all":
        walked: list[datetime.datetime] = []
        moment: datetime.datetime | None = first
        while moment is not None and moment <= now and len(walked) <= limit:
            walked.append(moment)
            moment = schedule.next_after(moment)
        if len(walked) <= limit:
            return Due(walked)
        return Due(latest_ones(schedule, first, now, limit), left_out=True)
    latest = latest_until(schedule, first, now)
    if missed == "skip" and (now - latest).total_seconds() > grace:
        return Due([], left_out=True, skip_to=latest)
    return Due([latest], left_out=latest != first)


def latest_until(schedule: Schedule, first: datetime.datetime, until: datetime.datetime) -> datetime.datetime:
    """The latest occurrence at or before `until`, given `first`, one that is.

    A walk from `first` would take a year of minutes after a long outage;
    this walks one step and bisects the rest of the window each round, so it
    needs about log2(window / period) rounds, using only `next_after`.
    """
    low, high = first, until  # low is an occurrence <= until; nothing lies in (high, until]
    while True:
        following = schedule.next_after(low)
        if following is None or following > until:
            return low
        low = following
        if high <= low:
            continue
        middle = low + (high - low) / 2
        candidate = schedule.next_after(middle)
        if candidate is not None and candidate <= until:
            low = candidate
        else:
            high = middle


def latest_ones(
    schedule: Schedule, first: datetime.datetime, until: datetime.datetime, limit: int
) -> list[datetime.datetime]:
    """The latest `limit` occurrences from `first` to `until`, oldest first, found backwards from `until`."""
    found: list[datetime.datetime] = []
    bound = until
    while len(found) < limit and first <= bound:
        latest = latest_until(schedule, first, bound)
        found.append(latest)
        bound = latest - MICROSECOND
    return found[::-1]


def iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat()


def _parse(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no offset")
    return moment
