"""`DurableExecutions`: AWS Lambda durable executions on the workflow service (one engine, one set of records).

- A run (the `workflow` platform call's `aws_begin` and `aws_end`): the first run makes the execution's
  record with the invocation's event as input; every run takes the next run number, which revokes the
  checkpoint tokens of the runs before it (a run that lost a race ends PENDING and writes nothing), and
  gets the event the SDK's `@durable_execution` expects: `DurableExecutionArn`, `CheckpointToken`,
  `InitialExecutionState`. What the handler returns ends the run: SUCCEEDED and FAILED finish the
  execution; PENDING leaves it to the engine's timers, callbacks and chained invokes to resume it.
- The durable-execution API the SDK and operators call on `/-/aws` (aws/lambda_durable.py):
  checkpoint, state, get, history, list, stop, and callbacks' success, failure and heartbeat.

Checkpoints go through `engine.apply_checkpoint` (aws_ops.translate makes its upserts) and the
workflow service's compare-and-set write, with the timers they cause in the same atomic write.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from triggerfish.errors import AtomicConflictError, HandlerError, InvalidInputError
from triggerfish.identity import durable_execution_arn, durable_execution_id, function_name
from triggerfish.runtime.types import PlatformCall
from triggerfish.store import ABSENT
from triggerfish.store.atomic import Op
from triggerfish.workflows import aws_ops
from triggerfish.workflows.engine import Rejected, Timer, apply_checkpoint, new_record
from triggerfish.workflows.errors import WorkflowNotFoundError, WorkflowStateError
from triggerfish.workflows.history import FAILED, RUNNING, SUCCEEDED, WAITING
from triggerfish.workflows.spans import operation_spans, span_writes
from triggerfish.workflows.state import Stored

if TYPE_CHECKING:
    from triggerfish.workflows.service import Workflows


class DurableExecutions:
    """The durable executions of one app: see the module docstring."""

    def __init__(self, workflows: Workflows) -> None:
        self.workflows = workflows

    # --- runs (platform calls from the worker) ------------------------------------------------

    async def begin(self, call: PlatformCall, args: dict[str, Any]) -> dict[str, Any]:
        lambda_name = str(args.get("lambda_name") or call.function)
        resume = args.get("resume")
        if resume is None:
            record = new_record(call.request_id, call.function, args.get("input"), self.workflows.clock())
            record.update(api=aws_ops.API, run=1, lambda_name=lambda_name, trace=call.traceparent)
            record["run_trace"] = call.traceparent
            try:
                # Made as its first run begins: one write.
                await self.workflows.state.atomic([self.workflows.state.put(record, ABSENT)])
                return self._event(record, lambda_name)
            except AtomicConflictError:
                # A retried invocation finds the record its first try made: that execution goes on, a run later.
                resume = record["id"]
        taken: dict[str, Any] = {}

        async def change(stored: Stored) -> tuple[dict[str, Any], list[Op]] | None:
            taken.clear()
            if stored.record["status"] != RUNNING:
                taken.update(stored.record)
                return None
            record = dict(stored.record)
            # One started by `triggerfish workflows start` (or the control API) becomes a durable execution here.
            record.setdefault("api", aws_ops.API)
            record.setdefault("lambda_name", lambda_name)
            record["run"] = int(record.get("run") or 0) + 1
            # The run's traceparent: the parent of the spans of the operations it carries out (spans.py).
            record["run_trace"] = call.traceparent
            taken.update(record)
            return record, []

        if not await self.workflows.write_record(str(resume), change) and not taken:
            raise InvalidInputError(f"durable execution: there is no execution {resume!r} to resume")
        if taken["status"] != RUNNING:
            return {"finished": _summary(taken)}
        return self._event(taken, lambda_name)

    @staticmethod
    def _event(record: Mapping[str, Any], lambda_name: str) -> dict[str, Any]:
        """A run's begin: the execution, the run's number, and the event the SDK's handler is called with."""
        first, marker = aws_ops.state_page(record, None, aws_ops.PAGE, millis=True)
        return {
            "id": record["id"],
            "run": record["run"],
            "event": {
                "DurableExecutionArn": durable_execution_arn(record.get("lambda_name") or lambda_name, record["id"]),
                "CheckpointToken": aws_ops.checkpoint_token(record["id"], record["run"], 0, aws_ops.revision(record)),
                "InitialExecutionState": {"Operations": first, "NextMarker": marker or ""},
            },
        }

    async def end(self, args: dict[str, Any]) -> dict[str, Any]:
        """A run returned `output` (the SDK's `{"Status", "Result", "Error"}`): finish the execution on SUCCEEDED
        or FAILED (when no later run has begun); the execution's summary."""
        execution_id, run, output = str(args.get("id")), args.get("run"), args.get("output")
        if not isinstance(output, Mapping):
            raise InvalidInputError(f"durable execution {execution_id!r}: the handler returned {output!r:.200}")
        status = output.get("Status")
        finish: dict[str, Any] | None = None
        if status == "SUCCEEDED":
            finish = {"status": SUCCEEDED, "result": aws_ops.result_value(output.get("Result"))}
        elif status == "FAILED":
            finish = {"status": FAILED, "error": aws_ops.error_in(output.get("Error")) or {}}
        seen: dict[str, Any] = {}

        async def change(stored: Stored) -> tuple[dict[str, Any], list[Op]] | None:
            seen.clear()
            seen.update(stored.record)
            if finish is None or stored.record["status"] != RUNNING or stored.record.get("run") != run:
                return None
            if finish["status"] == SUCCEEDED and finish["result"] is None and stored.record.get("result") is not None:
                return None
            try:
                record, _ = apply_checkpoint(stored.record, [], {}, finish, self.workflows.clock())
            except Rejected:
                return None
            seen.update(record)
            return record, []

        await self.workflows.write_record(execution_id, change)
        return _summary(seen) if seen else {"workflow_id": execution_id, "status": RUNNING}

    # --- the API ------------------------------------------------------------------------------

    async def checkpoint(self, arn: str, token: str, updates: Sequence[Any]) -> dict[str, Any]:
        """CheckpointDurableExecution: `updates` applied with compare-and-set, with the timers and spans they cause;
        the next token and the operations that changed since the token's (all of them for a token that does not
        say when it was given), paged. A token of an overtaken run (or of an execution that ended) is answered
        without a token and writes nothing. Raises BadUpdate, WorkflowNotFoundError."""
        execution_id = _id(arn)
        try:
            token_id, run, count, seen = aws_ops.parse_checkpoint_token(token)
        except ValueError as exc:
            raise aws_ops.BadUpdate(str(exc)) from None
        if token_id != execution_id:
            raise aws_ops.BadUpdate(f"the checkpoint token is one of execution {token_id!r}, not of {execution_id!r}")
        answer: dict[str, Any] = {}
        problem: list[str] = []
        spans: list[dict[str, Any]] = []

        async def change(stored: Stored) -> tuple[dict[str, Any], list[Op]] | None:
            answer.clear()
            record = stored.record
            if record["status"] != RUNNING or record.get("run") != run:
                # A later run began (or the execution ended): this run's token is revoked; it ends PENDING.
                answer["NewExecutionState"] = {"Operations": []}
                return None
            upserts, finish = aws_ops.translate(record, updates)
            now = self.workflows.clock()
            aws_ops.stamp_times(upserts, now)
            if not upserts and finish is None:
                answer.update(self._state_answer(record, execution_id, run, count, seen))
                return None
            try:
                updated, effects = apply_checkpoint(record, upserts, {}, finish, now)
            except Rejected as exc:
                problem.append(exc.reason)
                return None
            touched = [int(upsert["op"]["seq"]) for upsert in upserts]
            for seq in touched:
                if record.get("run_trace"):
                    updated["ops"][seq]["trace"] = record["run_trace"]
            aws_ops.stamp_changes(record, updated)
            ops: list[Op] = [self.workflows.state.timer(timer, now) for timer in effects.timers]
            spans[:] = operation_spans(updated, touched, now)
            ops += span_writes(spans)
            answer.update(self._state_answer(updated, execution_id, run, count, seen))
            if effects.finished:
                answer.pop("CheckpointToken", None)
            return updated, ops

        written = await self.workflows.write_record(execution_id, change)
        if not written and not answer:
            if problem:
                raise aws_ops.BadUpdate(problem[0])
            raise WorkflowNotFoundError(f"there is no durable execution {execution_id!r}")
        if written:
            self.workflows.tell_spans(spans)
        return answer

    def _state_answer(
        self, record: Mapping[str, Any], execution_id: str, run: int, count: int, seen: int | None
    ) -> dict[str, Any]:
        """A checkpoint's answer: the next token (saying what the run has now seen) and the first page of what
        changed since `seen` (everything when None)."""
        first, marker = aws_ops.state_page(record, None, aws_ops.PAGE, since=seen)
        state: dict[str, Any] = {"Operations": first}
        if marker:
            state["NextMarker"] = marker
        token = aws_ops.checkpoint_token(execution_id, run, count + 1, aws_ops.revision(record))
        return {"CheckpointToken": token, "NewExecutionState": state}

    async def state(self, arn: str, token: str, marker: str | None, max_items: int) -> dict[str, Any]:
        """GetDurableExecutionState: a page of the execution's operations, or (with a checkpoint answer's marker)
        of what changed since that checkpoint's token."""
        record = await self._record(arn)
        try:
            token_id, _, _, _ = aws_ops.parse_checkpoint_token(token)
        except ValueError as exc:
            raise aws_ops.BadUpdate(str(exc)) from None
        if token_id != record["id"]:
            raise aws_ops.BadUpdate(f"the checkpoint token is one of execution {token_id!r}, not of {record['id']!r}")
        items, next_marker = aws_ops.state_page(record, marker, max_items)
        return {"Operations": items, **({"NextMarker": next_marker} if next_marker else {})}

    async def describe(self, arn: str, app: str, *, include_data: bool = True) -> dict[str, Any]:
        record = await self._record(arn)
        return self.summary(record, app, include_data=include_data)

    def summary(self, record: Mapping[str, Any], app: str, *, include_data: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "DurableExecutionArn": self.arn(record, app),
            "DurableExecutionName": record["id"],
            "FunctionArn": _function_arn(record, app),
            "Status": aws_ops.execution_status(record),
            "StartTimestamp": record["started"],
            "Version": "$LATEST",
        }
        if record.get("ended") is not None:
            out["EndTimestamp"] = record["ended"]
        if include_data:
            out["InputPayload"] = orjson.dumps(record.get("input")).decode()
            if record.get("result") is not None:
                out["Result"] = orjson.dumps(record["result"]).decode()
            if record.get("error"):
                out["Error"] = aws_ops.error_out(record["error"])
            out["ExecutionDataIncluded"] = True
        return out

    def arn(self, record: Mapping[str, Any], app: str) -> str:
        return durable_execution_arn(record.get("lambda_name") or function_name(app, record["function"]), record["id"])

    async def history(
        self, arn: str, *, include_data: bool, marker: str | None, max_items: int, reverse: bool
    ) -> dict[str, Any]:
        record = await self._record(arn)
        events = aws_ops.history(record, include_data=include_data)
        if reverse:
            events.reverse()
        items, next_marker = aws_ops.page(events, marker, max_items)
        return {"Events": items, **({"NextMarker": next_marker} if next_marker else {})}

    async def by_function(
        self,
        function: str,
        app: str,
        *,
        statuses: Sequence[str],
        marker: str | None,
        max_items: int,
        reverse: bool,
        name: str | None,
    ) -> dict[str, Any]:
        records = [r for r in await self.workflows.records(function=function) if r.get("api") == aws_ops.API]
        chosen = [
            self.summary(r, app)
            for r in records
            if (not statuses or aws_ops.execution_status(r) in statuses) and (name is None or r["id"] == name)
        ]
        if reverse:
            chosen.reverse()
        items, next_marker = aws_ops.page(chosen, marker, max_items)
        return {"DurableExecutions": items, **({"NextMarker": next_marker} if next_marker else {})}

    async def stop(self, arn: str, error: Mapping[str, Any] | None) -> float:
        execution_id = _id(arn)
        reason = (error or {}).get("ErrorMessage") or "stopped by StopDurableExecution"
        record = await self.workflows.cancel(execution_id, str(reason))
        return float(record.get("ended") or time.time())

    async def heartbeat(self, token: str) -> None:
        """A callback's heartbeat: its heartbeat timeout starts again (a timer for the new due time)."""
        from triggerfish.workflows.context import parse_token

        try:
            execution_id, seq, _ = parse_token(token)
        except ValueError as exc:
            raise WorkflowNotFoundError(f"callback {token[:40]!r}: {exc}") from None
        problem: list[str] = []
        known: list[bool] = []

        async def change(stored: Stored) -> tuple[dict[str, Any], list[Op]] | None:
            ops = stored.record["ops"]
            if not 0 <= seq < len(ops) or ops[seq].get("token") != token:
                return None
            known.append(True)
            op = ops[seq]
            if op["status"] != WAITING or stored.record["status"] != RUNNING:
                problem.append(f"callback {op.get('name')!r} is {aws_ops.operation_status(op)}, not waiting")
                return None
            heartbeat = int(op.get("aws", {}).get("heartbeat") or 0)
            if heartbeat <= 0:
                return None
            now = self.workflows.clock()
            limit = int(op["aws"].get("limit") or 0)
            deadline = op["started"] + limit if limit else None
            due = now + heartbeat if deadline is None else min(now + heartbeat, deadline)
            record = orjson.loads(orjson.dumps(stored.record))
            record["ops"][seq]["due"] = due
            return record, [self.workflows.state.timer(Timer(execution_id, seq, due, "timeout"), now)]

        written = await self.workflows.write_record(execution_id, change)
        if not written and not known:
            raise WorkflowNotFoundError(f"no callback has the id {token[:40]!r}...: it is unknown or was forged")
        if not written and problem:
            raise WorkflowStateError(problem[0])

    # --- chained invokes (the engine's "invoke" timers) ----------------------------------------

    async def run_invoke(self, timer: Timer) -> None:
        """Invoke what the chained-invoke operation names and complete the operation with its outcome."""
        stored = await self.workflows.state.get(timer.workflow_id)
        if stored is None or stored.record["status"] != RUNNING:
            return
        ops = stored.record["ops"]
        if not 0 <= timer.seq < len(ops) or ops[timer.seq]["status"] != WAITING:
            return
        op = ops[timer.seq]
        target = str(op.get("function") or "")
        # A FunctionName as Lambda takes it (ARN, `<app>-<function>`, qualified): the app's own name for it.
        target = target.split(":function:", 1)[-1].split(":", 1)[0]
        app_prefix = str(stored.record.get("lambda_name") or "").removesuffix(stored.record["function"])
        if app_prefix and target.startswith(app_prefix):
            target = target[len(app_prefix) :]
        payload = op.get("payload")
        try:
            event = orjson.loads(payload) if isinstance(payload, str) and payload else None
        except orjson.JSONDecodeError:
            event = payload
        try:
            result = await self.workflows.invoker.invoke(target, event, trigger="workflow")
        except HandlerError as exc:
            await self.workflows.complete_operation(timer.workflow_id, timer.seq, FAILED, error=exc.error)
            return
        except Exception as exc:  # an unknown function, a throttle: the operation fails saying so
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            await self.workflows.complete_operation(timer.workflow_id, timer.seq, FAILED, error=error)
            return
        await self.workflows.complete_operation(
            timer.workflow_id, timer.seq, SUCCEEDED, result=aws_ops.payload_out(result)
        )

    async def _record(self, arn: str) -> dict[str, Any]:
        stored = await self.workflows.state.get(_id(arn))
        if stored is None or stored.record.get("api") != aws_ops.API:
            raise WorkflowNotFoundError(f"there is no durable execution {arn[:300]!r}")
        return stored.record


def timeout_is_current(record: Mapping[str, Any], timer: Timer, now: float) -> bool:
    """Whether a timeout timer still stands: a heartbeat moved the operation's due time past it otherwise."""
    ops = record["ops"]
    if not 0 <= timer.seq < len(ops):
        return True
    due = ops[timer.seq].get("due")
    return due is None or float(due) <= now + 0.001


def _id(arn: str) -> str:
    try:
        return durable_execution_id(arn)
    except ValueError as exc:
        raise aws_ops.BadUpdate(str(exc)) from None


def _function_arn(record: Mapping[str, Any], app: str) -> str:
    from triggerfish.identity import named_function_arn

    return named_function_arn(record.get("lambda_name") or function_name(app, record["function"]))


def _summary(record: Mapping[str, Any]) -> dict[str, Any]:
    answer = {"workflow_id": record["id"], "status": record["status"]}
    for key in ("result", "error"):
        if record.get(key) is not None:
            answer[key] = record[key]
    return answer
