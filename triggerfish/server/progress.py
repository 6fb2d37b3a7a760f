"""How far a long operation (a deploy, a replay, a redrive) has got, for a client to draw a progress bar.

    POST .../queues/jobs/redrive        X-Triggerfish-Progress: 5f0c...   (the client's id for this operation)
    GET  .../progress/5f0c...           {"step": "redrive", "done": 300, "total": 1200, "unit": "messages", ...}

The client names the operation with an id of its own making (a random
UUID) in the `X-Triggerfish-Progress` header of the request that starts
it, and asks `GET /progress/{id}` while it waits for the answer. The
operation reports as it goes: messages moved of the dead-letter depth it
found, events replayed of the archive range, a deploy's steps (install,
import, switch). Without the header nothing is kept.

Kept in this process's memory (the last `SIZE` operations, each for
`KEEP` seconds after its last report): progress is for the one waiting on
the answer, who asks the node doing the work (a cluster's load balancer
that spreads one client's requests over nodes leaves the bar empty until
the answer comes; the answer is the same).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.server.control_io import ApiError, json_response
from triggerfish.server.operations import Answer, Operation, inputs, path
from triggerfish.server.schema import Text

#: The request header naming the operation's id (made by the client).
PROGRESS_HEADER = "x-triggerfish-progress"
SIZE = 1000
KEEP = 600.0
_ID = re.compile(r"[A-Za-z0-9-]{8,64}")

#: What an operation calls as it goes: (done, total or None when unknown, the step it is at).
Report = Callable[[int, "int | None", str], None]


@dataclass(slots=True)
class Progress:
    step: str
    done: int
    total: int | None
    unit: str
    finished: bool
    updated: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProgressBoard:
    """The operations in progress (and just finished) in this process, by the id their client gave them."""

    def __init__(self, size: int = SIZE, keep: float = KEEP, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.keep = keep
        self.clock = clock
        self._by_id: OrderedDict[str, Progress] = OrderedDict()

    def reporter(self, operation: str | None, unit: str) -> Report | None:
        """The `Report` of operation `operation` counting `unit`s (None: no id given, nothing to report)."""
        if operation is None:
            return None

        def report(done: int, total: int | None, step: str) -> None:
            self.put(operation, Progress(step, done, total, unit, False, self.clock()))

        return report

    def put(self, operation: str, progress: Progress) -> None:
        self._by_id[operation] = progress
        self._by_id.move_to_end(operation)
        while len(self._by_id) > self.size:
            self._by_id.popitem(last=False)

    def finish(self, operation: str | None) -> None:
        """The operation ended (done or failed): its last report stays readable for `keep` seconds, finished."""
        found = None if operation is None else self._by_id.get(operation)
        if found is not None:
            found.finished = True
            found.updated = self.clock()

    def get(self, operation: str) -> Progress | None:
        found = self._by_id.get(operation)
        if found is not None and self.clock() - found.updated > self.keep:
            del self._by_id[operation]
            return None
        return found


#: This process's board (every app's and the server's operations; the ids are the clients' random ones).
BOARD = ProgressBoard()


def operation_of(request: Request) -> str | None:
    """The progress id the request names, checked (a bad one is refused: the client would wait on nothing)."""
    given = request.headers.get(PROGRESS_HEADER)
    if given is None:
        return None
    if not _ID.fullmatch(given):
        raise ApiError(
            400,
            "InvalidInput",
            f"header {PROGRESS_HEADER}: {given[:80]!r} is not a progress id; use 8 to 64 letters, digits and '-'"
            " (a random UUID)",
        )
    return given


async def get_progress(request: Request) -> Response:
    operation = inputs(request).path["id"]
    found = BOARD.get(operation)
    if found is None:
        raise ApiError(
            404,
            "ProgressNotFound",
            f"no operation {operation!r} has reported progress on this server (yet, or in the last {KEEP:g} s)",
        )
    return json_response(found.to_dict())


OPERATION = Operation(
    "GET",
    "/progress/{id}",
    get_progress,
    "How far the long operation (deploy, replay, redrive) started with this X-Triggerfish-Progress id has got",
    {200: Answer("Its step, units done of the total, whether it finished", "Progress")},
    "read",
    params=(path("id", "The id the client gave in X-Triggerfish-Progress", Text(min_length=8, max_length=64)),),
    errors=(404,),
)
