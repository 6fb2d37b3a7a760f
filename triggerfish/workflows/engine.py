"""Applying what a run of a workflow checkpoints to its record: pure, so every rule is tested without a store.

A checkpoint names each operation it writes and the status the run believed
it had (`expect`: None for a new one). The record takes it only while the
workflow is RUNNING and every belief holds; otherwise the run is `Superseded`
(another run got there first, or the workflow was cancelled) and nothing is
written. A taken checkpoint gives the record's new form and its effects: the
timers, event waits and children the platform has to set up in the same write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from triggerfish.workflows.history import (
    CANCELLED,
    FAILED,
    FINISHED,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    WAITING,
    batch_outcome,
    batch_state,
)


class Rejected(Exception):
    """The checkpoint does not fit the record: `reason` says why (the run stops)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Timer:
    """Wake the workflow at `due`: `kind` "wake" ends a sleep, "timeout" a wait, "retry" a step's backoff, "invoke"
    runs an AWS durable execution's chained invoke."""

    workflow_id: str
    seq: int
    due: float
    kind: str


@dataclass(slots=True)
class Effects:
    """What the platform sets up together with a taken checkpoint."""

    timers: list[Timer] = field(default_factory=list)
    #: (seq, bus, pattern) of each event wait begun.
    waits: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    #: Positions of batches begun (their first children start).
    batches: list[int] = field(default_factory=list)
    #: Whether the workflow finished with this checkpoint.
    finished: bool = False


def _copy(record: Mapping[str, Any]) -> dict[str, Any]:
    # Records are JSON: a round trip through orjson copies one several times faster than copy.deepcopy.
    copied: dict[str, Any] = orjson.loads(orjson.dumps(record))
    return copied


def new_record(
    workflow_id: str,
    function: str,
    input: Any,
    now: float,
    *,
    parent: Mapping[str, Any] | None = None,
    branch: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of a workflow that starts now."""
    return {
        "id": workflow_id,
        "function": function,
        "status": RUNNING,
        "input": input,
        "result": None,
        "error": None,
        "started": now,
        "ended": None,
        "parent": None if parent is None else dict(parent),
        "branch": None if branch is None else dict(branch),
        "ops": [],
        "markers": {},
    }


#: The record's list of the runs (their invocations' request ids) that ended on a wait, newest last.
ENDED_RUNS = "ended_runs"
#: How many are kept: an invocation is delivered again within its lease, long before this many runs have ended.
ENDED_RUNS_KEPT = 8


def note_ended_run(record: Mapping[str, Any], run: str) -> dict[str, Any]:
    """`record` noting that the run of invocation `run` ended on a wait (a copy; the record given is not changed)."""
    ended = [seen for seen in record.get(ENDED_RUNS) or () if seen != run]
    ended.append(run)
    return {**record, ENDED_RUNS: ended[-ENDED_RUNS_KEPT:]}


def apply_checkpoint(
    record: Mapping[str, Any],
    upserts: Sequence[Mapping[str, Any]],
    markers: Mapping[str, int],
    finish: Mapping[str, Any] | None,
    now: float,
) -> tuple[dict[str, Any], Effects]:
    """The record after the checkpoint, and its effects; raises Rejected when it does not fit."""
    if record["status"] != RUNNING:
        raise Rejected(f"workflow {record['id']!r} is {record['status']}")
    # A checkpoint replaces operations whole and never changes one in place: copying the record's outer dict,
    # its list of operations and its markers leaves `record` as it was, without copying every operation's
    # result (a JSON round trip of the whole record was a tenth of the platform's time per checkpoint).
    updated = {**record, "ops": list(record["ops"]), "markers": dict(record["markers"])}
    ops: list[dict[str, Any]] = updated["ops"]
    effects = Effects()
    for upsert in upserts:
        op = dict(upsert["op"])
        seq = op.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= len(ops):
            raise Rejected(f"operation position {seq!r} does not follow the history of {len(ops)} operations")
        current = ops[seq]["status"] if seq < len(ops) else None
        if current != upsert.get("expect"):
            raise Rejected(f"operation #{seq + 1} is {current or 'not recorded'} now, not {upsert.get('expect')}")
        _begin(updated["id"], op, now, effects)
        if seq < len(ops):
            ops[seq] = op
        else:
            ops.append(op)
    for change, version in markers.items():
        if updated["markers"].get(change, version) != version:
            raise Rejected(f"change {change!r} was recorded as version {updated['markers'][change]} meanwhile")
        updated["markers"][change] = version
    if finish is not None:
        status = finish.get("status")
        if status not in (SUCCEEDED, FAILED):
            raise Rejected(f"a workflow finishes SUCCEEDED or FAILED, not {status!r}")
        updated.update(status=status, result=finish.get("result"), error=finish.get("error"), ended=now)
        effects.finished = True
    return updated, effects


def _begin(workflow_id: str, op: dict[str, Any], now: float, effects: Effects) -> None:
    """Fill in what the platform decides for an operation that begins waiting (its due time, a batch's state)."""
    kind, status, seq = op.get("kind"), op.get("status"), op["seq"]
    if status == RETRYING:
        op["due"] = now + float(op.get("delay") or 0.0)
        effects.timers.append(Timer(workflow_id, seq, op["due"], "retry"))
    if status != WAITING:
        return
    if kind == "invoke":
        # A chained invoke of an AWS durable execution (aws_ops.py): the platform invokes it at once, from a
        # timer, so the invocation survives a restart like every other thing a workflow waits for.
        effects.timers.append(Timer(workflow_id, seq, now, "invoke"))
        return
    if kind == "sleep":
        op["due"] = now + float(op["seconds"])
        effects.timers.append(Timer(workflow_id, seq, op["due"], "wake"))
        return
    if op.get("timeout") is not None:
        op["due"] = now + float(op["timeout"])
        effects.timers.append(Timer(workflow_id, seq, op["due"], "timeout"))
    if kind == "event":
        effects.waits.append((seq, str(op["bus"]), dict(op["pattern"])))
    elif kind == "batch":
        spec = op["batch"]
        state = batch_state(
            len(spec["items"]), spec["max_concurrency"], spec["min_successful"], spec["tolerated_failures"]
        )
        op["batch"] = {**spec, **state}
        effects.batches.append(seq)


def complete_wait(
    record: Mapping[str, Any], seq: int, status: str, now: float, *, result: Any = None, error: Any = None
) -> dict[str, Any]:
    """The record with the waiting operation `seq` completed (SUCCEEDED, FAILED or TIMED_OUT); Rejected when the
    workflow or the operation no longer waits."""
    if record["status"] != RUNNING:
        raise Rejected(f"workflow {record['id']!r} is {record['status']}")
    ops = record["ops"]
    if not 0 <= seq < len(ops) or ops[seq]["status"] != WAITING:
        state = ops[seq]["status"] if 0 <= seq < len(ops) else "not recorded"
        raise Rejected(f"operation #{seq + 1} of workflow {record['id']!r} is {state}, not waiting")
    if status not in (SUCCEEDED, FAILED, TIMED_OUT):
        raise Rejected(f"a wait completes SUCCEEDED, FAILED or TIMED_OUT, not {status!r}")
    updated = _copy(record)
    op = updated["ops"][seq]
    op.update(status=status, result=result, error=error, ended=now)
    return updated


def retry_due(record: Mapping[str, Any], seq: int) -> dict[str, Any]:
    """The record with the retrying step `seq` made READY; Rejected when it is not retrying."""
    ops = record["ops"]
    if record["status"] != RUNNING or not 0 <= seq < len(ops) or ops[seq]["status"] != RETRYING:
        raise Rejected(f"operation #{seq + 1} of workflow {record['id']!r} is not retrying")
    updated = _copy(record)
    updated["ops"][seq]["status"] = "READY"
    return updated


def child_finished(
    parent: Mapping[str, Any], seq: int, index: int, status: str, result: Any, error: Any, now: float
) -> tuple[dict[str, Any], list[int], str | None]:
    """The parent after child `index` of its batch `seq` finished: its record, the children to start next, and
    the batch's outcome once decided (SUCCEEDED or FAILED). Rejected when the batch no longer waits."""
    from triggerfish.workflows.history import batch_finish, batch_to_start

    if parent["status"] != RUNNING:
        raise Rejected(f"workflow {parent['id']!r} is {parent['status']}")
    ops = parent["ops"]
    if not 0 <= seq < len(ops) or ops[seq]["status"] != WAITING or ops[seq]["kind"] != "batch":
        raise Rejected(f"operation #{seq + 1} of workflow {parent['id']!r} waits for no children")
    updated = _copy(parent)
    op = updated["ops"][seq]
    state = op["batch"]
    batch_finish(state, index, status if status in FINISHED else CANCELLED, result, error)
    outcome = batch_outcome(state)
    if outcome is not None:
        op.update(status=outcome, ended=now)
        # Children still running are cancelled now (the platform tells their records once this is written).
        state["children"] = [CANCELLED if child == RUNNING else child for child in state["children"]]
        return updated, [], outcome
    starting = batch_to_start(state)
    for started in starting:
        state["children"][started] = RUNNING
    return updated, starting, None


def start_batch(record: dict[str, Any], seq: int) -> list[int]:
    """Mark the first children of batch `seq` RUNNING (in place); their indices."""
    from triggerfish.workflows.history import batch_to_start

    state = record["ops"][seq]["batch"]
    starting = batch_to_start(state)
    for index in starting:
        state["children"][index] = RUNNING
    return starting


def child_id(parent_id: str, seq: int, index: int) -> str:
    """The id of child `index` of the batch at `seq`: stable, so starting it twice starts it once."""
    return f"{parent_id}.{seq + 1}.{index + 1}"


def waiting_children(record: Mapping[str, Any]) -> list[str]:
    """The ids of the children this workflow's batches are still running (to cancel with it)."""
    found = []
    for op in record["ops"]:
        if op.get("kind") == "batch" and op.get("status") == WAITING:
            for index, status in enumerate(op["batch"]["children"]):
                if status == RUNNING:
                    found.append(child_id(record["id"], op["seq"], index))
    return found


def cancel(record: Mapping[str, Any], now: float, reason: str) -> dict[str, Any]:
    """The record cancelled; Rejected when it has finished already."""
    if record["status"] in FINISHED:
        raise Rejected(f"workflow {record['id']!r} has finished ({record['status']}); there is nothing to cancel")
    updated = _copy(record)
    updated.update(status=CANCELLED, ended=now, error={"errorType": "WorkflowCancelled", "errorMessage": reason})
    return updated
