"""The consumer-group bookkeeping of the memory store (pure): claimed ranges, their leases, the position.

A group's claimed ranges tile its stream's offsets from 1 upwards without gaps:
each new range starts right after the highest offset ever claimed (`claimed`),
so the position can advance over committed ranges one after another. A range
whose records retention removed still covers their offsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from triggerfish.store.base import LogClaim


@dataclass(slots=True)
class Range:
    first: int
    last: int
    token: str
    expires_at: float
    committed: bool = False


@dataclass(slots=True)
class Group:
    position: int = 0
    claimed: int = 0
    #: Uncommitted ranges and committed ones not yet behind the position, by their first offset.
    ranges: dict[int, Range] = field(default_factory=dict)

    def lapsed(self, now: float) -> Range | None:
        """The earliest range whose lease ended without a commit."""
        found = [r for r in self.ranges.values() if not r.committed and r.expires_at <= now]
        return min(found, key=lambda r: r.first) if found else None

    def held(self, claim: LogClaim) -> Range | None:
        """The range `claim` names, if its token still holds it."""
        r = self.ranges.get(claim.first)
        if r is None or r.token != claim.token or r.last != claim.last or r.committed:
            return None
        return r

    def add(self, first: int, last: int, token: str, expires_at: float) -> None:
        self.ranges[first] = Range(first, last, token, expires_at)
        self.claimed = last

    def commit(self, r: Range) -> None:
        r.committed = True
        while True:
            head = self.ranges.get(self.position + 1)
            if head is None or not head.committed:
                return
            del self.ranges[head.first]
            self.position = head.last

    def seek(self, offset: int) -> None:
        self.ranges.clear()
        self.position = self.claimed = offset

    def advance(self, expected: int, offset: int) -> bool:
        if self.position != expected or any(r.first <= offset for r in self.ranges.values()):
            return False
        self.position, self.claimed = offset, max(self.claimed, offset)
        return True
