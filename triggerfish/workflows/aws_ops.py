"""AWS Lambda durable executions over the workflow engine's records: pure translation, no I/O.

A durable execution (a handler decorated with the AWS SDK's `@durable_execution`) is a workflow record
like any other (`x/<id>` in `triggerfish.workflows`, engine.py), marked `"api": "aws"`. The SDK replays
the handler itself and checkpoints AWS `OperationUpdate`s; this module turns each update into the
engine's upsert of one operation (`{"op", "expect"}`), so `apply_checkpoint` keeps the one set of rules
(and the one set of effects: timers for waits, retries and callback timeouts). Back the other way, a
record's operations become AWS `Operation`s (CheckpointDurableExecution, GetDurableExecutionState, the
invocation's `InitialExecutionState`) and history events (GetDurableExecutionHistory).

Each AWS operation keeps its AWS identity under `op["aws"]` (`id`, `parent`, `type`, `sub`); its
position in the record is its `seq`, as for a native operation. Statuses are the engine's:

    AWS          engine          AWS          engine
    STARTED      WAITING         PENDING      RETRYING     (a wait, callback or chained invoke; a step's backoff)
    STARTED      STARTED         READY        READY        (a step's attempt begun; its retry is due)

Payloads stay the strings the SDK serialized (the SDK deserializes them itself); errors are kept in the
engine's shape (`errorType`, `errorMessage`, `errorData`, `stackTrace`).

Deltas: every write of a durable execution's record that changes operations (a checkpoint, a wait's or a
retry's timer, a callback's answer, a chained invoke's end) stamps them with the record's next revision
(`rev`, `stamp_changes`). A checkpoint token carries the revision its answer reflected, so the next
checkpoint answers only the operations stamped after it (`NewExecutionState`, paged with `NextMarker`),
as Lambda does: an execution of thousands of operations costs the same per checkpoint as one of a few.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from triggerfish.workflows.context import callback_token
from triggerfish.workflows.history import (
    CANCELLED,
    FAILED,
    READY,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    WAITING,
)

#: The record's `api` for a durable execution driven by the AWS SDK.
API = "aws"
#: A step's attempt has begun (the SDK checkpointed START) and has not ended.
STARTED = "STARTED"
#: How many operations one page of state holds (GetDurableExecutionState's MaxItems at most).
PAGE = 1000

_KIND = {"STEP": "step", "WAIT": "sleep", "CALLBACK": "callback", "CHAINED_INVOKE": "invoke", "CONTEXT": "context"}
_EXECUTION_STATUS = {RUNNING: "RUNNING", SUCCEEDED: "SUCCEEDED", FAILED: "FAILED", CANCELLED: "STOPPED"}


class BadUpdate(ValueError):
    """An OperationUpdate the execution cannot take: the message says which and why."""


# --- tokens ------------------------------------------------------------------------------------------


def checkpoint_token(execution_id: str, run: int, count: int, rev: int | None = None) -> str:
    """The token a run checkpoints with: which execution, which run of it (a later run revokes it), how many
    checkpoints so far, and the record's revision the run has seen (its next checkpoint answers what changed
    after it). Standard base64, as Lambda's tokens are."""
    body: list[Any] = [execution_id, run, count] if rev is None else [execution_id, run, count, rev]
    return base64.b64encode(orjson.dumps(body)).decode("ascii")


def parse_checkpoint_token(token: str) -> tuple[str, int, int, int | None]:
    """(execution id, run, count, revision seen) of a checkpoint token (the revision None in a token of a
    version that did not give one: its checkpoint answers every operation); ValueError when it is not one."""
    problem = "not a checkpoint token (give the CheckpointToken the invocation or a checkpoint gave)"
    try:
        body = orjson.loads(base64.b64decode(token.encode("ascii"), validate=True))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise ValueError(problem) from None
    if not isinstance(body, list) or len(body) not in (3, 4):
        raise ValueError(problem)
    execution_id, run, count, *more = body
    rev = more[0] if more else None
    if (
        not isinstance(execution_id, str)
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in (run, count))
        or not (rev is None or (isinstance(rev, int) and not isinstance(rev, bool) and rev >= 0))
    ):
        raise ValueError(problem)
    return execution_id, run, count, rev


# --- updates in ------------------------------------------------------------------------------------


def translate(
    record: Mapping[str, Any], updates: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The engine's upserts for `updates` over `record` (in order), and the execution's outcome when an
    EXECUTION update ends it. Raises BadUpdate for an update that is not one."""
    ops: list[dict[str, Any]] = list(record["ops"])
    index = {op["aws"]["id"]: op["seq"] for op in ops if "aws" in op}
    upserts: list[dict[str, Any]] = []
    finish: dict[str, Any] | None = None
    for position, update in enumerate(updates):
        if not isinstance(update, Mapping) or not isinstance(update.get("Id"), str) or not update["Id"]:
            raise BadUpdate(f"Updates[{position}]: an update is an object with an Id, not {update!r:.200}")
        kind, action = update.get("Type"), update.get("Action")
        if kind == "EXECUTION":
            finish = _finish(update, action, position)
            continue
        if kind not in _KIND:
            raise BadUpdate(f"Updates[{position}]: Type {kind!r} is not one of EXECUTION, {', '.join(_KIND)}")
        found = index.get(update["Id"])
        current = ops[found] if found is not None else None
        seq = len(ops) if found is None else found
        if current is None:
            current = {
                "seq": seq,
                "kind": _KIND[kind],
                "name": update.get("Name") or update.get("SubType") or _KIND[kind],
                "status": None,
                "started": None,
                "result": None,
                "error": None,
                "attempts": 0,
                "aws": {
                    "id": update["Id"],
                    "parent": update.get("ParentId"),
                    "type": kind,
                    "sub": update.get("SubType"),
                    # The SDK checks a replayed operation's name against this (None when it had none).
                    "name": update.get("Name"),
                },
            }
        elif current["aws"]["type"] != kind:
            raise BadUpdate(
                f"Updates[{position}]: operation {update['Id']!r} is a {current['aws']['type']}, not a {kind}"
            )
        op = _apply(dict(current), update, action, position, record["id"])
        if op is None:
            continue
        upserts.append({"op": op, "expect": current["status"]})
        if seq == len(ops):
            ops.append(op)
            index[update["Id"]] = seq
        else:
            ops[seq] = op
    return upserts, finish


def _finish(update: Mapping[str, Any], action: object, position: int) -> dict[str, Any]:
    if action == "SUCCEED":
        return {"status": SUCCEEDED, "result": result_value(update.get("Payload"))}
    if action == "FAIL":
        return {"status": FAILED, "error": error_in(update.get("Error"))}
    raise BadUpdate(f"Updates[{position}]: an EXECUTION update SUCCEEDs or FAILs, not {action!r}")


def _apply(
    op: dict[str, Any], update: Mapping[str, Any], action: object, position: int, execution_id: str
) -> dict[str, Any] | None:
    """The operation after `update`; None when the update changes nothing (it repeats what the record has)."""
    kind, status = op["aws"]["type"], op["status"]
    now_fields: dict[str, Any] = {}
    if action == "START":
        if kind == "STEP":
            now_fields = {"status": STARTED, "attempts": int(op.get("attempts") or 0) + 1}
        elif kind == "CONTEXT":
            now_fields = {"status": STARTED}
        elif kind == "WAIT":
            seconds = (update.get("WaitOptions") or {}).get("WaitSeconds", 1)
            now_fields = {"status": WAITING, "seconds": _seconds(seconds, "WaitOptions.WaitSeconds", position)}
        elif kind == "CALLBACK":
            options = update.get("CallbackOptions") or {}
            timeout = _seconds(options.get("TimeoutSeconds", 0), "CallbackOptions.TimeoutSeconds", position)
            heartbeat = _seconds(
                options.get("HeartbeatTimeoutSeconds", 0), "CallbackOptions.HeartbeatTimeoutSeconds", position
            )
            limits = [s for s in (timeout, heartbeat) if s > 0]
            token = callback_token(execution_id, op["seq"], secrets.token_urlsafe(12))
            op["aws"] = {**op["aws"], "heartbeat": heartbeat, "limit": timeout}
            now_fields = {"status": WAITING, "timeout": min(limits) if limits else None, "token": token}
        elif kind == "CHAINED_INVOKE":
            options = update.get("ChainedInvokeOptions") or {}
            function = options.get("FunctionName")
            if not isinstance(function, str) or not function:
                raise BadUpdate(f"Updates[{position}]: a CHAINED_INVOKE START names ChainedInvokeOptions.FunctionName")
            now_fields = {"status": WAITING, "function": function, "payload": update.get("Payload")}
        if status is not None and (kind != "STEP" or status not in (READY, RETRYING)):
            # Started again by a run that had not seen it begin (or a step's START sent twice): it stays as it is.
            return None
    elif action == "SUCCEED" and kind in ("STEP", "CONTEXT"):
        now_fields = {"status": SUCCEEDED, "result": update.get("Payload"), "error": None}
    elif action == "FAIL" and kind in ("STEP", "CONTEXT"):
        now_fields = {"status": FAILED, "error": error_in(update.get("Error"))}
    elif action == "RETRY" and kind == "STEP":
        delay = (update.get("StepOptions") or {}).get("NextAttemptDelaySeconds", 0)
        now_fields = {
            "status": RETRYING,
            "delay": _seconds(delay, "StepOptions.NextAttemptDelaySeconds", position),
            "error": error_in(update.get("Error")) if update.get("Error") else None,
            # wait_for_condition keeps its state in the retry's payload.
            "result": update.get("Payload"),
        }
    elif action == "CANCEL" and kind in ("WAIT", "CALLBACK", "CHAINED_INVOKE"):
        now_fields = {"status": CANCELLED}
    else:
        raise BadUpdate(f"Updates[{position}]: a {kind} operation takes no {action!r} action")
    if kind == "STEP" and action in ("SUCCEED", "FAIL", "RETRY") and status != STARTED:
        # An at-least-once step may succeed with no START checkpointed before: it was an attempt all the same.
        now_fields.setdefault("attempts", int(op.get("attempts") or 0) + 1)
    if status in (SUCCEEDED, FAILED, CANCELLED, TIMED_OUT):
        # Ended already (a callback answered while the run went on, say): the end stands.
        return None
    op.update(now_fields)
    return op


def stamp_times(upserts: Sequence[Mapping[str, Any]], now: float) -> None:
    """Fill in the platform's times of the operations (in place): begun now, ended now."""
    for upsert in upserts:
        op = upsert["op"]
        if op.get("started") is None:
            op["started"] = now
        if op.get("ended") is None and op["status"] in (SUCCEEDED, FAILED, CANCELLED):
            op["ended"] = now


def _seconds(value: object, what: str, position: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 31_622_400:
        raise BadUpdate(f"Updates[{position}]: {what} is a whole number of seconds up to a year, not {value!r}")
    return value


def result_value(payload: object) -> Any:
    """The execution's result as the engine keeps results: JSON when the payload is JSON, else the text."""
    if not isinstance(payload, str) or not payload:
        return None
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload


# --- errors ----------------------------------------------------------------------------------------


def error_in(error: object) -> dict[str, Any] | None:
    """An AWS ErrorObject in the engine's shape."""
    if not isinstance(error, Mapping):
        return None
    found = {
        "errorType": error.get("ErrorType"),
        "errorMessage": error.get("ErrorMessage"),
        "errorData": error.get("ErrorData"),
        "stackTrace": error.get("StackTrace"),
    }
    return {key: value for key, value in found.items() if value is not None}


def error_out(error: object) -> dict[str, Any] | None:
    """The engine's error as an AWS ErrorObject."""
    if not isinstance(error, Mapping):
        return None
    found = {
        "ErrorType": error.get("errorType"),
        "ErrorMessage": error.get("errorMessage"),
        "ErrorData": error.get("errorData"),
        "StackTrace": error.get("stackTrace"),
    }
    if found["StackTrace"] is not None and not isinstance(found["StackTrace"], list):
        found["StackTrace"] = [str(found["StackTrace"])]
    return {key: value for key, value in found.items() if value is not None}


def payload_out(value: Any) -> str | None:
    """A payload as the SDK reads it: the string it wrote, or JSON of a value the platform was given."""
    if value is None:
        return None
    return value if isinstance(value, str) else orjson.dumps(value).decode()


# --- operations out --------------------------------------------------------------------------------


def execution_status(record: Mapping[str, Any]) -> str:
    return _EXECUTION_STATUS.get(record["status"], str(record["status"]))


def operation_status(op: Mapping[str, Any]) -> str:
    status = op["status"]
    if status == WAITING:
        return "STARTED"
    if status == RETRYING:
        return "PENDING"
    return str(status)


def operations(record: Mapping[str, Any], *, millis: bool) -> list[dict[str, Any]]:
    """The execution's operations as AWS has them: the EXECUTION operation first, then each of the SDK's.
    Timestamps are epoch seconds for the API (`millis=False`) or milliseconds for the invocation's event."""
    return [
        execution_operation(record, millis=millis),
        *(operation(op, millis=millis) for op in record["ops"] if "aws" in op),
    ]


def execution_operation(record: Mapping[str, Any], *, millis: bool) -> dict[str, Any]:
    """The EXECUTION operation: the execution's input, and whether it goes on."""
    return {
        "Id": record["id"],
        "Type": "EXECUTION",
        "Status": "STARTED" if record["status"] == RUNNING else execution_status(record),
        "StartTimestamp": _time(record["started"], millis),
        "ExecutionDetails": {"InputPayload": orjson.dumps(record.get("input")).decode()},
    }


def operation(op: Mapping[str, Any], *, millis: bool) -> dict[str, Any]:
    aws = op["aws"]
    kind = aws["type"]
    out: dict[str, Any] = {"Id": aws["id"], "Type": kind, "Status": operation_status(op)}
    for key, value in (("ParentId", aws.get("parent")), ("Name", aws.get("name")), ("SubType", aws.get("sub"))):
        if value:
            out[key] = value
    if op.get("started") is not None:
        out["StartTimestamp"] = _time(op["started"], millis)
    if op.get("ended") is not None:
        out["EndTimestamp"] = _time(op["ended"], millis)
    result, error = payload_out(op.get("result")), error_out(op.get("error"))
    details: dict[str, Any] = {}
    if result is not None:
        details["Result"] = result
    if error:
        details["Error"] = error
    if kind == "STEP":
        details["Attempt"] = int(op.get("attempts") or 0)
        if op["status"] == RETRYING and op.get("due") is not None:
            details["NextAttemptTimestamp"] = _time(op["due"], millis)
        out["StepDetails"] = details
    elif kind == "WAIT":
        out["WaitDetails"] = {} if op.get("due") is None else {"ScheduledEndTimestamp": _time(op["due"], millis)}
    elif kind == "CALLBACK":
        out["CallbackDetails"] = {"CallbackId": op.get("token"), **details}
    elif kind == "CHAINED_INVOKE":
        out["ChainedInvokeDetails"] = details
    else:
        out["ContextDetails"] = details
    return out


def _time(seconds: float, millis: bool) -> float | int:
    return int(seconds * 1000) if millis else seconds


def stamp_changes(before: Mapping[str, Any], after: dict[str, Any]) -> None:
    """Stamp the AWS operations `after` changed from `before` (new ones too) with the record's next revision, in
    place, and `after` with it when any did; nothing when `after` is stamped already."""
    rev = int(before.get("rev") or 0) + 1
    if int(after.get("rev") or 0) >= rev:
        return
    old = before["ops"]
    changed = False
    for op in after["ops"]:
        if "aws" in op and (op["seq"] >= len(old) or op != old[op["seq"]]):
            op["rev"] = rev
            changed = True
    if changed:
        after["rev"] = rev


def revision(record: Mapping[str, Any]) -> int:
    """The record's revision: its operations stamped up to it (0: none stamped yet)."""
    return int(record.get("rev") or 0)


def state_page(
    record: Mapping[str, Any], marker: str | None, max_items: int, *, since: int | None = None, millis: bool = False
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of an execution's operations, and the marker of the next page (None: the last).

    With `since`, the operations changed after that revision (a checkpoint's answer) and no EXECUTION
    operation; otherwise all of them, the EXECUTION operation first. A marker names where its page ends (the
    operation's position in the record) and, for changes, since when; a page for it goes on from there whatever
    changed meanwhile, so no operation is skipped (one that changes again may be given again: the SDK keeps
    operations by id)."""
    after = -2  # before the EXECUTION operation (-1)
    if marker:
        since, after = _parse_marker(marker)
    chosen: list[dict[str, Any]] = []
    if since is None and after < -1:
        chosen.append({"seq": -1})
    for op in record["ops"]:
        if len(chosen) > max_items:
            break
        if "aws" in op and op["seq"] > after and (since is None or int(op.get("rev") or 0) > since):
            chosen.append(op)
    more = len(chosen) > max_items
    chosen = chosen[:max_items]
    items = [
        execution_operation(record, millis=millis) if op["seq"] == -1 else operation(op, millis=millis) for op in chosen
    ]
    if not more:
        return items, None
    last = chosen[-1]["seq"]
    return items, (f"all.{last}" if since is None else f"since.{since}.{last}")


def _parse_marker(marker: str) -> tuple[int | None, int]:
    """(since, after) of a marker state_page gave."""
    parts = marker.split(".")
    try:
        if parts[0] == "all" and len(parts) == 2:
            return None, int(parts[1])
        if parts[0] == "since" and len(parts) == 3:
            return int(parts[1]), int(parts[2])
    except ValueError:
        pass
    raise BadUpdate(f"Marker {marker!r:.60} is not one this API gave")


def page(items: Sequence[Any], marker: str | None, max_items: int) -> tuple[list[Any], str | None]:
    """One page of `items` after `marker` (an offset, as this API's markers are), and the next marker."""
    try:
        start = int(marker) if marker else 0
    except ValueError:
        raise BadUpdate(f"Marker {marker!r:.60} is not one this API gave") from None
    if start < 0 or max_items < 1:
        raise BadUpdate(f"Marker {marker!r:.60} and MaxItems {max_items} do not make a page")
    end = start + max_items
    return list(items[start:end]), (str(end) if end < len(items) else None)


# --- history -----------------------------------------------------------------------------------------

_STARTED_EVENT = {
    "STEP": "StepStarted",
    "WAIT": "WaitStarted",
    "CALLBACK": "CallbackStarted",
    "CHAINED_INVOKE": "ChainedInvokeStarted",
    "CONTEXT": "ContextStarted",
}
_ENDED = {
    ("STEP", SUCCEEDED): "StepSucceeded",
    ("STEP", FAILED): "StepFailed",
    ("WAIT", SUCCEEDED): "WaitSucceeded",
    ("WAIT", CANCELLED): "WaitCancelled",
    ("CALLBACK", SUCCEEDED): "CallbackSucceeded",
    ("CALLBACK", FAILED): "CallbackFailed",
    ("CALLBACK", TIMED_OUT): "CallbackTimedOut",
    ("CHAINED_INVOKE", SUCCEEDED): "ChainedInvokeSucceeded",
    ("CHAINED_INVOKE", FAILED): "ChainedInvokeFailed",
    ("CHAINED_INVOKE", TIMED_OUT): "ChainedInvokeTimedOut",
    ("CHAINED_INVOKE", CANCELLED): "ChainedInvokeStopped",
    ("CONTEXT", SUCCEEDED): "ContextSucceeded",
    ("CONTEXT", FAILED): "ContextFailed",
}


def history(record: Mapping[str, Any], *, include_data: bool) -> list[dict[str, Any]]:
    """The execution's history events, oldest first: its start, each operation's start and end, its end."""
    events: list[dict[str, Any]] = []

    def add(event_type: str, at: float, op: Mapping[str, Any] | None, details: dict[str, Any]) -> None:
        event: dict[str, Any] = {"EventType": event_type, "EventId": len(events) + 1, "EventTimestamp": at}
        if op is not None:
            event.update(Id=op["aws"]["id"], Name=op.get("name"))
            if op["aws"].get("parent"):
                event["ParentId"] = op["aws"]["parent"]
            if op["aws"].get("sub"):
                event["SubType"] = op["aws"]["sub"]
        else:
            event.update(Id=record["id"], Name=record["id"])
        event[f"{event_type}Details"] = details
        events.append(event)

    add("ExecutionStarted", record["started"], None, {"Input": _data(record.get("input"), include_data)})
    for op in record["ops"]:
        if "aws" not in op:
            continue
        kind = op["aws"]["type"]
        started: dict[str, Any] = {}
        if kind == "WAIT":
            started = {"Duration": int(op.get("seconds") or 0)}
        elif kind == "CALLBACK":
            started = {
                "CallbackId": op.get("token"),
                "Timeout": int(op["aws"].get("limit") or 0),
                "HeartbeatTimeout": int(op["aws"].get("heartbeat") or 0),
            }
        add(_STARTED_EVENT[kind], op.get("started") or record["started"], op, started)
        ended = _ENDED.get((kind, op["status"]))
        if ended is not None:
            at = op.get("ended") or op.get("started") or record["started"]
            body = (
                {"Error": {"Payload": error_out(op.get("error")) or {}}}
                if op.get("error") and op["status"] != SUCCEEDED
                else {"Result": _data(op.get("result"), include_data)}
            )
            add(ended, at, op, body)
    if record["status"] != RUNNING:
        kind = {SUCCEEDED: "ExecutionSucceeded", FAILED: "ExecutionFailed"}.get(record["status"], "ExecutionStopped")
        # The execution's result is kept as the JSON value it is (engine.py), not as the SDK's text.
        result = None if record.get("result") is None else orjson.dumps(record["result"]).decode()
        body = (
            {"Result": _data(result, include_data)}
            if record["status"] == SUCCEEDED
            else {"Error": {"Payload": error_out(record.get("error")) or {}}}
        )
        add(kind, record.get("ended") or record["started"], None, body)
    return events


def _data(value: Any, include: bool) -> dict[str, Any]:
    text = payload_out(value) if include else None
    return {"Truncated": not include} if text is None else {"Payload": text, "Truncated": False}
