"""The loop guard: functions that trigger each other for ever are stopped, and what was stopped is kept.

Every event, message and destination record a function emits carries a hop
count one higher than the invocation that emitted it. One that would go past
`MAX_HOPS` (16, as Lambda's recursive-loop detection) is not published, sent
or delivered: a warning names the function, request id and hop count, and
the stopped payload is appended to the log stream `platform.loop-stopped`,
so nothing vanishes. The emitter is not failed (as with Lambda), because
failing it would only retry it and loop again.

Every emitter asks the same `LoopGuard`: the publisher (events and topic
messages), a handler's `context.send`, and the dispatcher's destinations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from triggerfish.errors import InvalidInputError
from triggerfish.names import LOOP_STOPPED_STREAM
from triggerfish.store import EventLog

#: Longest chain of functions triggering functions: an emission at a higher hop count is stopped.
MAX_HOPS = 16

logger = logging.getLogger("triggerfish.loopguard")


@dataclass(frozen=True, slots=True)
class Origin:
    """Who emitted something: named in the guard's warning and in what it keeps."""

    function: str | None = None
    request_id: str | None = None


def check_max_hops(max_hops: object) -> int:
    if isinstance(max_hops, bool) or not isinstance(max_hops, int) or max_hops < 1:
        raise InvalidInputError(f"max_hops must be a whole number of at least 1, not {max_hops!r}")
    return max_hops


class LoopGuard:
    """Decides whether an emission at a hop count goes ahead, and keeps what it stops."""

    def __init__(self, log: EventLog, *, max_hops: int = MAX_HOPS) -> None:
        self.max_hops = check_max_hops(max_hops)
        self.log = log

    def allows(self, hops: int) -> bool:
        return hops <= self.max_hops

    async def stop(self, *, op: str, target: str, hops: int, payload: Any, origin: Origin | None = None) -> None:
        """Log a warning and keep `payload` in `platform.loop-stopped`; the emission does not happen."""
        origin = origin or Origin()
        logger.warning(
            "loop guard: stopped a %s to %r from function %r (request %s) at hop count %d, over the limit of %d;"
            " look for functions that trigger each other",
            op,
            target,
            origin.function,
            origin.request_id,
            hops,
            self.max_hops,
        )
        stopped = {
            "op": op,
            "target": target,
            "function": origin.function,
            "request_id": origin.request_id,
            "hop_count": hops,
            "payload": payload,
        }
        await self.log.append(LOOP_STOPPED_STREAM, orjson.dumps(stopped, default=str))
