"""A workflow's history and the replay model: pure data and decisions, no I/O.

A workflow runs again from the top every time it resumes. Each operation it
asks for (a step, a sleep, a wait, a callback, a child batch, a deterministic
time or random value) takes the next position in its history: `Replay.next`
gives the recorded operation at that position, or None at the frontier (the
operation is new: the context carries it out and records it). An operation at
a position that was recorded as another kind or name means the code changed
under a running workflow: `NonDeterminismError` names both.

Version markers (`Replay.version`) do not take positions: a change id is
recorded once, with the newest version when the code reaches it at the
frontier, or version 0 when an older history is replayed past the point where
the marker now stands (the code that ran then had no marker), so old and new
executions each take the branch they started on.

Batches (child workflows, `map`, `parallel`) keep their state in one
operation; `batch_*` decide which children start and when the batch is done.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from triggerfish.workflows.errors import NonDeterminismError

# An execution's status.
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
EXECUTION_STATUSES = (RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED})

# An operation's status (besides SUCCEEDED and FAILED).
#: Waiting for time, an event, a callback or children: the workflow is suspended on it.
WAITING = "WAITING"
#: A step's attempt failed; its retry is due at `due` (a timer makes it READY).
RETRYING = "RETRYING"
#: A step whose retry is due: the next run tries it again.
READY = "READY"
#: A wait or callback whose timeout passed first.
TIMED_OUT = "TIMED_OUT"

#: The kinds of operation, as recorded.
KINDS = frozenset({"step", "invoke", "sleep", "event", "callback", "batch", "value", "context"})

#: The longest sleep or wait timeout: a year (and a day, for leap years).
MAX_WAIT_SECONDS = 366 * 24 * 3600.0


def describe(op: Mapping[str, Any]) -> str:
    """An operation as the errors name it: `step 'charge'`."""
    return f"{op.get('kind')} {op.get('name')!r}"


class Replay:
    """Walks a workflow's recorded operations in the order the code asks for them."""

    __slots__ = ("_ops", "markers", "new_markers", "position", "workflow_id")

    def __init__(self, workflow_id: str, ops: Sequence[dict[str, Any]], markers: Mapping[str, int]) -> None:
        self.workflow_id = workflow_id
        self._ops = list(ops)
        self.markers = dict(markers)
        #: Markers recorded by this run, to be checkpointed.
        self.new_markers: dict[str, int] = {}
        self.position = 0

    @property
    def replaying(self) -> bool:
        """Whether recorded operations lie ahead (the code is re-running what already happened)."""
        return self.position < len(self._ops)

    def next(self, kind: str, name: str) -> dict[str, Any] | None:
        """The recorded operation at the next position, checked against what the code asks for; None when new."""
        position = self.position
        self.position += 1
        if position >= len(self._ops):
            return None
        op = self._ops[position]
        if op.get("kind") != kind or op.get("name") != name:
            raise NonDeterminismError(
                f"workflow {self.workflow_id!r}: operation #{position + 1} is {describe(op)} in the history, but"
                f" the code now asks for {kind} {name!r} there; the code changed in a way running workflows cannot"
                " follow: branch on ctx.version(...) to keep the old path for them",
                position=position + 1,
            )
        return op

    def record(self, op: dict[str, Any]) -> None:
        """Keep an operation this run made or changed (at its own position)."""
        seq = op["seq"]
        if seq < len(self._ops):
            self._ops[seq] = op
        else:
            self._ops.append(op)

    def finish(self) -> None:
        """The code returned: every recorded operation must have been asked for again."""
        if self.position < len(self._ops):
            op = self._ops[self.position]
            raise NonDeterminismError(
                f"workflow {self.workflow_id!r}: the code returned, but operation #{self.position + 1} ("
                f"{describe(op)}) is in the history; the code changed in a way running workflows cannot follow:"
                " branch on ctx.version(...) to keep the old path for them",
                position=self.position + 1,
            )

    def version(self, change: str, minimum: int, maximum: int) -> int:
        """The version of `change` this execution follows (see the module docstring)."""
        recorded = self.markers.get(change)
        if recorded is None:
            recorded = 0 if self.replaying else maximum
            self.markers[change] = self.new_markers[change] = recorded
        if not minimum <= recorded <= maximum:
            raise NonDeterminismError(
                f"workflow {self.workflow_id!r}: it follows version {recorded} of change {change!r}, but the code"
                f" supports versions {minimum} to {maximum} only; keep the branch for version {recorded} while"
                " workflows that took it are running",
                position=self.position,
            )
        return recorded


# --- batches: child workflows, map, parallel ---------------------------------------------------------


def batch_state(
    count: int, max_concurrency: int | None, min_successful: int | None, tolerated_failures: int | None
) -> dict[str, Any]:
    """A new batch of `count` children, none started."""
    return {
        "count": count,
        "max_concurrency": max_concurrency or count,
        "min_successful": min_successful,
        "tolerated_failures": (0 if min_successful is None else count)
        if tolerated_failures is None
        else tolerated_failures,
        "children": [None] * count,
        "results": [None] * count,
        "errors": [None] * count,
    }


def batch_to_start(state: Mapping[str, Any]) -> list[int]:
    """The children to start now: the first unstarted ones, up to the batch's concurrency."""
    children = state["children"]
    running = sum(1 for status in children if status == RUNNING)
    room = max(0, state["max_concurrency"] - running)
    return [index for index, status in enumerate(children) if status is None][:room]


def batch_outcome(state: Mapping[str, Any]) -> str | None:
    """SUCCEEDED or FAILED once the batch's completion criteria are decided; None while they are not."""
    children = state["children"]
    succeeded = children.count(SUCCEEDED)
    failed = children.count(FAILED) + children.count(CANCELLED)
    unfinished = len(children) - succeeded - failed
    minimum = state["min_successful"]
    if failed > state["tolerated_failures"]:
        return FAILED
    if minimum is not None:
        if succeeded >= minimum:
            return SUCCEEDED
        if succeeded + unfinished < minimum:
            return FAILED
    if unfinished == 0:
        return SUCCEEDED if minimum is None or succeeded >= minimum else FAILED
    return None


def batch_finish(state: dict[str, Any], index: int, status: str, result: Any, error: Any) -> None:
    """Record that child `index` finished with `status` (SUCCEEDED, FAILED or CANCELLED)."""
    if state["children"][index] in FINISHED:
        return
    state["children"][index] = status
    state["results"][index] = result
    state["errors"][index] = error


def check_wait_seconds(value: object, what: str) -> float:
    """Seconds of a sleep or timeout: a number (or timedelta's seconds) from 0 to a year."""
    seconds = value.total_seconds() if hasattr(value, "total_seconds") else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        raise ValueError(f"{what} must be a number of seconds or a timedelta, not {value!r}")
    if not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise ValueError(f"{what} must be from 0 seconds to a year ({MAX_WAIT_SECONDS:g} s), not {seconds:g}")
    return float(seconds)
