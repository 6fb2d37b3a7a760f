"""`Workflows`: the platform's side of durable workflows, over a store.

- It answers a workflow's runs (the `workflow` platform call): `begin` (its
  record, made on the first run), `checkpoint` (taken with compare-and-set,
  together with the timers, event waits, children and invocations it causes,
  in one atomic write), `invoke` (another function, synchronously).
- Its timer loop ends sleeps, waits' timeouts and steps' backoffs when due, and
  queues the invocation that resumes the workflow (timers are queue messages:
  they survive restarts, and no worker waits).
- `EventWaits` consumes the buses in a consumer group of its own and answers
  waiting workflows whose pattern an event matches.
- The operations of the control API and the CLI: start, list, describe,
  cancel, complete a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson

from triggerfish.bus.consumer import LogConsumer
from triggerfish.errors import AtomicConflictError, FunctionNotFoundError, HandlerError, InvalidInputError
from triggerfish.events import tracecontext
from triggerfish.events.patterns import Pattern, compile_pattern
from triggerfish.names import bus_stream
from triggerfish.observe.spans import Span, SpanListener
from triggerfish.runtime.invoke import new_request_id
from triggerfish.runtime.types import PlatformCall
from triggerfish.store import ABSENT, LogRecord, Message, OutgoingMessage, Store
from triggerfish.store.atomic import Delete, Op, Send
from triggerfish.workflows.aws_ops import API, stamp_changes
from triggerfish.workflows.context import RESUME_KEY, not_kept, parse_token
from triggerfish.workflows.durable_service import DurableExecutions, timeout_is_current
from triggerfish.workflows.engine import (
    ENDED_RUNS,
    Rejected,
    Timer,
    apply_checkpoint,
    cancel,
    child_finished,
    child_id,
    complete_wait,
    new_record,
    note_ended_run,
    retry_due,
    start_batch,
    waiting_children,
)
from triggerfish.workflows.errors import WorkflowNotFoundError, WorkflowStateError
from triggerfish.workflows.history import FAILED, RETRYING, RUNNING, SUCCEEDED, TIMED_OUT, WAITING
from triggerfish.workflows.recent import RecentRecords
from triggerfish.workflows.spans import operation_spans, span_writes
from triggerfish.workflows.state import NAMESPACE, Stored, Wait, WorkflowState, wait_key

log = logging.getLogger("triggerfish.workflows")

#: Compare-and-set rounds a write tries before giving up (each re-reads the record).
MAX_TRIES = 50
#: The consumer group the event waits read the buses in.
WAITS_GROUP = "workflow-waits"
#: The trigger named in the invocation records of a workflow's runs the platform starts.
TRIGGER = "workflow"
#: What the JSON of every resume marker holds: most invocations are told apart from one without decoding.
_RESUME_BYTES = f'"{RESUME_KEY}"'.encode()


class Invokes(Protocol):
    """What the service needs of the platform: invocations built for an atomic write, and sync invokes."""

    def message(self, function: str, event: Any, **options: Any) -> tuple[str, OutgoingMessage, str]: ...

    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any: ...

    async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str: ...


class Workflows:
    """The workflows of one app: see the module docstring."""

    def __init__(
        self,
        store: Store,
        invoker: Invokes,
        *,
        clock: Callable[[], float] = time.time,
        span_listeners: list[SpanListener] | None = None,
    ) -> None:
        self.state = WorkflowState(store)
        #: The records of running workflows as last written here: a checkpoint needs no read first (recent.py).
        self.recent = RecentRecords()
        #: Told of each operation's span once written (OTLP export), as the platform's other spans are.
        self.span_listeners: list[SpanListener] = [] if span_listeners is None else span_listeners
        self.invoker = invoker
        self.clock = clock
        self.waits = EventWaits(self)
        #: AWS Lambda durable executions, on these same records (durable_service.py).
        self.durable = DurableExecutions(self)
        self._timer_task: asyncio.Task[None] | None = None
        # Chained invokes running now (workflow id, position), each in a task of its own.
        self._invoking: dict[tuple[str, int], asyncio.Task[None]] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the timers and the event waits in the background."""
        self._timer_task = asyncio.create_task(self._timers_forever())
        await self.waits.start()

    async def stop(self) -> None:
        for task in list(self._invoking.values()):
            task.cancel()
        await self.waits.stop()
        if self._timer_task is not None:
            self._timer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer_task
            self._timer_task = None

    # --- a run's platform calls ---------------------------------------------------------------

    async def call(self, call: PlatformCall, args: dict[str, Any]) -> Any:
        action = args.get("action")
        if action == "begin":
            return await self._begin(call, args)
        if action == "checkpoint":
            return await self._checkpoint(args, call.traceparent, call.request_id)
        if action == "finish":
            return await self._finish(args, call.traceparent, call.request_id)
        if action == "invoke":
            return await self._invoke(call, args)
        if action == "start":
            return await self._start_from_handler(args)
        if action == "aws_begin":
            return await self.durable.begin(call, args)
        if action == "aws_end":
            return await self.durable.end(args)
        raise InvalidInputError(
            f"workflow: unknown action {action!r}; use begin, checkpoint, finish, invoke, start, aws_begin or aws_end"
        )

    async def _begin(self, call: PlatformCall, args: dict[str, Any]) -> Any:
        resume = args.get("resume")
        if resume is not None:
            stored = await self.state.get(str(resume))
            if stored is None:
                raise InvalidInputError(f"workflow: there is no workflow {resume!r} to resume")
            self.recent.saw(stored)
            return _begun(stored.record, call.request_id)
        record = new_record(call.request_id, call.function, args.get("input"), self.clock())
        record["trace"] = call.traceparent
        put = self.state.put(record, ABSENT)
        try:
            results = await self.state.atomic([put])
            self.recent.wrote(record, put.value, getattr(results[0], "version", None))
        except AtomicConflictError:
            # A retried invocation: the workflow it started goes on.
            stored = await self.state.get(call.request_id)
            if stored is not None:
                return _begun(stored.record, call.request_id)
            raise
        return {"record": record}

    async def prelude(self, function: str, request_id: str, event: bytes) -> dict[str, Any] | None:
        """The `begin` answer of a workflow's run that the dispatcher is about to send (its event the resume marker),
        read now and sent with the request, so the run needs no round trip for it (`run_workflow`); None for any
        other invocation, or when the read fails (the run then asks, as it always could).

        Read as late as `begin` would be in all that matters: only a run of the same workflow could write the record
        between this read and the run's start, and a run the resume could follow has written its last checkpoint
        before anything queues the resume (the wait it ended on); two runs at once after a crash are the race the
        checkpoints' compare-and-set settles, as with `begin`."""
        if _RESUME_BYTES not in event:
            return None
        specs = getattr(self.invoker, "specs", None)
        spec = specs.get(function) if isinstance(specs, dict) else None
        if spec is None or not spec.workflow:
            return None
        try:
            marker = orjson.loads(event)
            workflow_id = marker[RESUME_KEY]["id"] if len(marker) == 1 else None
            if not isinstance(workflow_id, str):
                return None
            stored = await self.state.get(workflow_id)
        except Exception:
            log.exception("workflow run %s: its record could not be read ahead; the run reads it", request_id)
            return None
        if stored is None:
            return None
        self.recent.saw(stored)
        return {"resume": workflow_id, **_begun(stored.record, request_id)}

    async def _start_from_handler(self, args: dict[str, Any]) -> Any:
        """`context.start_workflow(...)`: a handler starts a workflow (with an id of its choosing, so that a handler
        run again starts nothing new)."""
        function = args.get("function")
        # The platform knows which of its functions are workflows; invoking any other with a resume marker would
        # hand it an event it cannot read.
        specs = getattr(self.invoker, "specs", None)
        if isinstance(specs, dict):
            known = sorted(name for name, spec in specs.items() if spec.workflow or spec.durable)
            if function not in known:
                raise InvalidInputError(
                    f"context.start_workflow: no workflow named {function!r}; "
                    f"the app's workflows are: {', '.join(known) or 'none (declare one with @app.workflow)'}"
                )
        if not isinstance(function, str):
            raise InvalidInputError(f"context.start_workflow: function must be a workflow's name, not {function!r}")
        workflow_id = await self.start_workflow(function, args.get("input"), workflow_id=args.get("id"))
        return {"workflow_id": workflow_id}

    async def _checkpoint(self, args: dict[str, Any], traceparent: str | None = None, run: str | None = None) -> Any:
        workflow_id = args.get("id")
        upserts = args.get("ops") or []
        markers = args.get("markers") or {}
        finish = args.get("finish")
        if not isinstance(workflow_id, str) or not isinstance(upserts, list) or not isinstance(markers, dict):
            raise InvalidInputError("workflow checkpoint: give id (text), ops (a list) and markers (an object)")
        waiting_on = args.get("waiting_on")
        if waiting_on is not None and (isinstance(waiting_on, bool) or not isinstance(waiting_on, int)):
            raise InvalidInputError(f"workflow checkpoint: waiting_on is an operation's position, not {waiting_on!r}")
        if not upserts and not markers and finish is None:
            # The run ends on a wait it saw in the history it loaded: only that it ended is written (and a resume
            # when the wait was answered meanwhile).
            if waiting_on is None or run is None:
                return {"ok": True}

            async def ended(stored: Stored) -> tuple[dict[str, Any], list[Op]] | None:
                if stored.record["status"] != RUNNING:
                    return None
                record = note_ended_run(stored.record, run)
                return record, [self._resume(record)] if _answered(record, waiting_on) else []

            await self.write_record(workflow_id, ended)
            return {"ok": True}
        reason = ""
        unneeded: list[str] = []
        spans: list[dict[str, Any]] = []

        async def change(stored: Stored) -> tuple[dict[str, Any], list[Op]] | None:
            nonlocal reason
            now = self.clock()
            try:
                record, effects = apply_checkpoint(stored.record, upserts, markers, finish, now)
            except Rejected as exc:
                reason = exc.reason
                return None
            # Each operation remembers the run that carried it out: its span's parent (spans.py).
            touched = [int(upsert["op"]["seq"]) for upsert in upserts]
            for seq in touched:
                record["ops"][seq].setdefault("trace", traceparent)
            ops: list[Op] = [self.state.timer(timer, now) for timer in effects.timers]
            spans[:] = operation_spans(record, touched, now)
            ops += span_writes(spans)
            if waiting_on is not None and run is not None:
                record = note_ended_run(record, run)
            if _answered(record, waiting_on):
                ops.append(self._resume(record))
            for seq, bus, pattern in effects.waits:
                ops.append(self.state.wait(workflow_id, seq, bus, pattern, await self.state.offset(bus)))
            for seq in effects.batches:
                ops += self._start_children(record, seq, start_batch(record, seq))
            unneeded.clear()
            if effects.finished and record.get("parent"):
                ops += await self._tell_parent(record, unneeded)
            return record, ops

        try:
            written = await self.write_record(workflow_id, change)
        except InvalidInputError as exc:
            # Over the store's record limit, say: the run is told, and its workflow fails saying why.
            return {"refused": str(exc)}
        if not written:
            return {"superseded": reason or f"workflow {workflow_id!r} is not there"}
        self.tell_spans(spans)
        await self._cancel_all(unneeded, "its batch finished without it")
        return {"ok": True}

    async def _finish(self, args: dict[str, Any], traceparent: str | None, run: str) -> dict[str, Any]:
        """A run's last checkpoint, with the workflow's outcome, sent with the run's result (`run_workflow`); the run's
        summary, which becomes its invocation's result: what the run would have answered had it checkpointed
        itself. A refused outcome (over the store's record limit, say) fails the workflow saying why; a run that
        another got ahead of answers RUNNING, as a superseded run does."""
        outcome = args.get("finish")
        if not isinstance(outcome, dict):
            raise InvalidInputError("workflow finish: give the outcome (finish: an object)")
        workflow_id = args.get("id")
        answer = await self._checkpoint(args, traceparent, run)
        if answer.get("refused"):
            message = not_kept(str(workflow_id), answer["refused"])
            error = {"errorType": "WorkflowError", "errorMessage": message, "stackTrace": []}
            outcome = {"status": FAILED, "error": error}
            failed: dict[str, Any] = {"id": workflow_id, "ops": [], "markers": {}, "finish": outcome}
            answer = await self._checkpoint(failed, traceparent, run)
            if answer.get("refused"):
                raise WorkflowStateError(f"{message}; nor its failure: {answer['refused']}")
        if answer.get("superseded"):
            return {"workflow_id": workflow_id, "status": RUNNING}
        return {"workflow_id": workflow_id, **outcome}

    def tell_spans(self, spans: list[dict[str, Any]]) -> None:
        """Tell the span listeners of the spans `operation_spans` gave (the Span is made only for a listener)."""
        if not self.span_listeners:
            return
        for fields in spans:
            span = Span(**fields)
            for listener in self.span_listeners:
                try:
                    listener(span)
                except Exception:
                    log.exception("a span listener failed on %s", span.span_id)

    async def _invoke(self, call: PlatformCall, args: dict[str, Any]) -> Any:
        function = args.get("function")
        try:
            result = await self.invoker.invoke(str(function), args.get("payload"), trigger=TRIGGER)
        except HandlerError as exc:
            return {"error": exc.error}
        except FunctionNotFoundError as exc:
            return {"error": {"errorType": "ResourceNotFoundException", "errorMessage": str(exc)}}
        return {"result": result}

    # --- writing a record ---------------------------------------------------------------------

    async def write_record(self, workflow_id: str, change: Callable[[Stored], Any]) -> bool:
        """Read the record, make its change (None: none to make) and write it with compare-and-set, again on a
        conflict. Whether it was written.

        The first try starts from the record as this platform last wrote it (`RecentRecords`), which spares a
        read per checkpoint. That copy may be stale (another node wrote since): the compare-and-set then fails,
        and a change refused on it is asked again of a fresh read, so every decision stands on the stored
        record."""
        cached = self.recent.get(workflow_id)
        for _ in range(MAX_TRIES):
            if cached is not None:
                stored, cached = cached, None
                from_cache = True
            else:
                found = await self.state.get(workflow_id)
                if found is None:
                    self.recent.forget(workflow_id)
                    return False
                stored, from_cache = found, False
            made = await change(stored)
            if made is None:
                if from_cache:
                    self.recent.stale += 1
                    continue
                return False
            record, ops = made
            if record.get("api") == API:
                # What changed, for the durable SDK's next checkpoint answer (aws_ops.stamp_changes).
                stamp_changes(stored.record, record)
            put = self.state.put(record, stored.version)
            try:
                results = await self.state.atomic([put, *ops])
            except AtomicConflictError:
                self.recent.stale += from_cache
                continue
            self.recent.wrote(record, put.value, getattr(results[0], "version", None))
            return True
        raise WorkflowStateError(f"workflow {workflow_id!r} changed {MAX_TRIES} times while it was being written")

    def _resume(self, record: dict[str, Any]) -> Send:
        # Every run continues the trace the workflow began in: its runs and their operations are one trace.
        trace = record.get("trace")
        queue, message, _ = self.invoker.message(
            record["function"],
            {RESUME_KEY: {"id": record["id"]}},
            trigger=TRIGGER,
            traceparent=trace if isinstance(trace, str) else None,
        )
        return Send(queue, [message])

    def _start_children(self, record: dict[str, Any], seq: int, indices: Sequence[int]) -> list[Op]:
        spec = record["ops"][seq]["batch"]
        ops: list[Op] = []
        for index in indices:
            branch = None if spec["mode"] == "child" else {"mode": spec["mode"], "ref": spec["ref"]}
            child = new_record(
                child_id(record["id"], seq, index),
                spec["function"],
                spec["items"][index],
                self.clock(),
                parent={"id": record["id"], "seq": seq, "index": index},
                branch=branch,
            )
            ops += [self.state.put(child, ABSENT), self._resume(child)]
        return ops

    async def _tell_parent(self, child: dict[str, Any], unneeded: list[str]) -> list[Op]:
        """The writes that tell a finished child's parent (its batch moves on), as part of the child's write; the
        children the batch no longer needs once that write is in go to `unneeded` (to cancel then)."""
        parent = child["parent"]
        stored = await self.state.get(parent["id"])
        if stored is None:
            return []
        try:
            record, starting, outcome = child_finished(
                stored.record,
                parent["seq"],
                parent["index"],
                child["status"],
                child.get("result"),
                child.get("error"),
                self.clock(),
            )
        except Rejected:
            return []
        ops = [self.state.put(record, stored.version), *self._start_children(record, parent["seq"], starting)]
        if outcome is not None:
            ops.append(self._resume(record))
            # The batch's children still running (as the parent's record had them) are not needed any more.
            unneeded += [c for c in waiting_children(stored.record) if c != child["id"]]
        return ops

    async def _cancel_all(self, ids: list[str], reason: str) -> None:
        for workflow_id in ids:
            with contextlib.suppress(WorkflowStateError, WorkflowNotFoundError):
                await self.cancel(workflow_id, reason)

    async def complete_operation(
        self, workflow_id: str, seq: int, status: str, *, result: Any = None, error: Any = None
    ) -> str:
        """Complete the waiting operation `seq` (and drop its event wait) and resume the workflow; the reason it
        could not ('' when done)."""
        reason = ""
        spans: list[dict[str, Any]] = []

        async def change(stored: Stored) -> tuple[dict[str, Any], list[Op]] | None:
            nonlocal reason
            try:
                record = complete_wait(stored.record, seq, status, self.clock(), result=result, error=error)
            except Rejected as exc:
                reason = exc.reason
                return None
            spans[:] = operation_spans(record, [seq], self.clock())
            return record, [*self._drop_waits(stored.record, seq), self._resume(record), *span_writes(spans)]

        if await self.write_record(workflow_id, change):
            self.tell_spans(spans)
            return ""
        return reason or f"there is no workflow {workflow_id!r}"

    def _drop_waits(self, record: dict[str, Any], seq: int | None = None) -> list[Op]:
        """Deleting the event waits of the record's waiting operations (of operation `seq` only, when given)."""
        drops: list[Op] = []
        for op in record["ops"]:
            if op.get("kind") == "event" and op.get("status") == WAITING and seq in (None, op["seq"]):
                drops.append(Delete(NAMESPACE, wait_key(str(op["bus"]), record["id"], op["seq"])))
        return drops

    # --- timers -------------------------------------------------------------------------------

    async def run_timers(self, *, wait: float = 0.0) -> int:
        """Handle the timers that came up (waiting up to `wait` seconds for one); how many."""
        found = await self.state.timers(wait=wait)
        for timer, message in found:
            now = self.clock()
            ack = self.state.ack([message])
            if timer.due > now + 0.001:
                await self.state.atomic([self.state.timer(timer, now), ack])
                continue
            if timer.kind == "invoke":
                # A chained invoke may take as long as the function does: it runs in a task of its own, and its
                # timer is acknowledged when it is done (after a crash the timer comes up again: at least once).
                key = (timer.workflow_id, timer.seq)
                if key not in self._invoking:
                    self._invoking[key] = asyncio.create_task(self._invoke_then_ack(timer, message))
                continue
            try:
                await self._fire(timer)
            except Exception:
                log.exception("workflow %r: its %s timer failed; it comes up again", timer.workflow_id, timer.kind)
                continue
            await self.state.atomic([ack])
        return len(found)

    async def _invoke_then_ack(self, timer: Timer, message: Message) -> None:
        try:
            await self.durable.run_invoke(timer)
            await self.state.atomic([self.state.ack([message])])
        except Exception:
            log.exception("workflow %r: its chained invoke #%d failed; it comes up again", timer.workflow_id, timer.seq)
        finally:
            self._invoking.pop((timer.workflow_id, timer.seq), None)

    async def _fire(self, timer: Timer) -> None:
        if timer.kind == "wake":
            await self.complete_operation(timer.workflow_id, timer.seq, SUCCEEDED)
        elif timer.kind == "timeout":
            stored = await self.state.get(timer.workflow_id)
            # A callback's heartbeat moves its due time on (and sets a timer for that): this one stands aside.
            if stored is None or timeout_is_current(stored.record, timer, self.clock()):
                await self.complete_operation(timer.workflow_id, timer.seq, TIMED_OUT)
        elif timer.kind == "retry":

            async def change(stored: Stored) -> tuple[dict[str, Any], list[Op]] | None:
                try:
                    record = retry_due(stored.record, timer.seq)
                except Rejected:
                    return None
                return record, [self._resume(record)]

            await self.write_record(timer.workflow_id, change)

    async def run_due(self) -> int:
        """Handle what is due now (timers, events on the buses waited on) once; how much was done. For a platform
        whose triggers do not run in the background."""
        done = await self.run_timers()
        for bus in await self.waits.names():
            done += await self.waits.pump(bus)
        return done

    async def _timers_forever(self) -> None:
        while True:
            try:
                await self.run_timers(wait=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("workflow timers failed; trying again in 1 s")
                await asyncio.sleep(1.0)

    # --- events -------------------------------------------------------------------------------

    async def event_arrived(self, wait: Wait, record: LogRecord) -> None:
        """An event that matches `wait`'s pattern: the workflow gets it and goes on."""
        event = orjson.loads(record.data)
        if await self.complete_operation(wait.workflow_id, wait.seq, SUCCEEDED, result=event):
            # The workflow no longer waits there (timed out, cancelled, gone): the wait goes.
            await self.state.atomic([self.state.drop_wait(wait)])

    # --- operations ---------------------------------------------------------------------------

    async def start_workflow(self, function: str, input: Any = None, *, workflow_id: str | None = None) -> str:
        """Start `function` (a workflow) with `input`; its id. The record is written with the invocation that runs
        it, so the workflow can be described at once; starting one with an id that exists starts nothing new.

        Raises FunctionNotFoundError, and InvalidInputError when the input is not JSON or the id is not one."""
        if workflow_id is not None and (
            not isinstance(workflow_id, str) or not 0 < len(workflow_id) <= 128 or not workflow_id.isprintable()
        ):
            raise InvalidInputError(f"a workflow's id is 1 to 128 printable characters, not {workflow_id!r}")
        record = new_record(workflow_id or new_request_id(), function, input, self.clock())
        # Started here, not by an invocation: the workflow's runs make one trace of their own.
        record["trace"] = tracecontext.new_traceparent()
        try:
            write = self.state.put(record, ABSENT)
        except TypeError as exc:
            raise InvalidInputError(f"workflow {function!r}: the input must be JSON: {exc}") from None
        # One that was started before goes on: nothing new starts.
        with contextlib.suppress(AtomicConflictError):
            results = await self.state.atomic([write, self._resume(record)])
            self.recent.wrote(record, write.value, getattr(results[0], "version", None))
        return str(record["id"])

    async def describe(self, workflow_id: str) -> dict[str, Any]:
        stored = await self.state.get(workflow_id)
        if stored is None:
            raise WorkflowNotFoundError(f"there is no workflow {workflow_id!r}")
        return stored.record

    async def records(self, *, function: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Every workflow of `function` in `status` (when given), newest first."""
        return await self.state.records(function=function, status=status)

    async def cancel(self, workflow_id: str, reason: str = "cancelled by request") -> dict[str, Any]:
        """Cancel a workflow that has not finished (and the children it runs); its record."""
        problem = ""
        done: dict[str, Any] = {}
        unneeded: list[str] = []

        async def change(stored: Stored) -> tuple[dict[str, Any], list[Op]] | None:
            nonlocal problem
            try:
                record = cancel(stored.record, self.clock(), reason)
            except Rejected as exc:
                problem = exc.reason
                return None
            done.update(record)
            unneeded.clear()
            ops = self._drop_waits(stored.record)
            if record.get("parent"):
                ops += await self._tell_parent(record, unneeded)
            return record, ops

        if not await self.write_record(workflow_id, change):
            if not problem:
                raise WorkflowNotFoundError(f"there is no workflow {workflow_id!r}")
            raise WorkflowStateError(problem)
        await self._cancel_all(waiting_children(done), f"its parent {workflow_id!r} was cancelled")
        await self._cancel_all(unneeded, "its batch finished without it")
        return done

    async def resume(self, workflow_id: str) -> dict[str, Any]:
        """Queue a run of a workflow that has not finished: it replays from its checkpoints. For a workflow whose
        invocation failed past its retries (dead-lettered: the worker died, the run timed out) once the cause is
        fixed; a run too many finds the history ahead of it and stops. Its record."""
        stored = await self.state.get(workflow_id)
        if stored is None:
            raise WorkflowNotFoundError(f"there is no workflow {workflow_id!r}")
        if stored.record["status"] != RUNNING:
            raise WorkflowStateError(
                f"workflow {workflow_id!r} has finished ({stored.record['status']}); start a new one instead"
            )
        await self.state.atomic([self._resume(stored.record)])
        return stored.record

    async def complete_callback(self, token: str, *, result: Any = None, error: dict[str, Any] | None = None) -> None:
        """Answer a callback: with `result` (success) or `error` (`errorType`, `errorMessage`: failure)."""
        try:
            workflow_id, seq, nonce = parse_token(token)
        except ValueError as exc:
            raise WorkflowNotFoundError(f"callback token {token[:40]!r}: {exc}") from None
        stored = await self.state.get(workflow_id)
        ops = [] if stored is None else stored.record["ops"]
        if not 0 <= seq < len(ops) or ops[seq].get("kind") != "callback" or ops[seq].get("token") != token:
            raise WorkflowNotFoundError(f"no callback has the token {token[:40]!r}...: it is unknown or was forged")
        if ops[seq]["status"] != WAITING:
            raise WorkflowStateError(
                f"callback {ops[seq]['name']!r} of workflow {workflow_id!r} is {ops[seq]['status']}"
            )
        del nonce
        if (
            stored is not None
            and stored.record.get("api") == API
            and result is not None
            and not isinstance(result, str)
        ):
            # The AWS SDK reads a callback's result as the text it deserializes itself.
            result = orjson.dumps(result).decode()
        if error is not None:
            reason = await self.complete_operation(workflow_id, seq, FAILED, error=error)
        else:
            reason = await self.complete_operation(workflow_id, seq, SUCCEEDED, result=result)
        if reason:
            raise WorkflowStateError(reason)


class EventWaits(LogConsumer):
    """Reads every bus that a workflow waits on, in a consumer group of its own; answers the waits."""

    kind = "bus"

    def __init__(self, workflows: Workflows) -> None:
        super().__init__(workflows.state.store, group=WAITS_GROUP, namespace=NAMESPACE, clock=workflows.clock)
        self.workflows = workflows
        self._patterns: dict[str, Pattern] = {}

    def stream(self, name: str) -> str:
        return bus_stream(name)

    async def names(self) -> list[str]:
        return sorted({wait.bus for wait in await self.workflows.state.waits()})

    async def consume(self, name: str, records: list[LogRecord]) -> list[Op]:
        waits = await self.workflows.state.waits(name)
        for wait in waits:
            pattern = self._pattern(wait.pattern)
            for record in records:
                if record.offset > wait.after and _matches(pattern, record.data):
                    await self.workflows.event_arrived(wait, record)
                    break
        # The answers are written above, each on its own: an event consumed again finds its waits answered.
        return []

    def _pattern(self, source: dict[str, Any]) -> Pattern:
        key = json.dumps(source, sort_keys=True)
        found = self._patterns.get(key)
        if found is None:
            if len(self._patterns) > 10_000:
                self._patterns.clear()
            found = self._patterns[key] = compile_pattern(source)
        return found


def _begun(record: dict[str, Any], run: str) -> dict[str, Any]:
    """The answer to a run's `begin`: the record, and whether this invocation's run already ended on a wait (it is
    delivered again after a crash lost its acknowledgement; the wait's own resume goes on from there, and a second
    run beside it would carry out the next operation twice)."""
    if run in record.get(ENDED_RUNS, ()):
        return {"record": record, "ended": True}
    return {"record": record}


def _answered(record: dict[str, Any], waiting_on: int | None) -> bool:
    """Whether the operation a run ended on, seeing it wait, no longer waits: its answer came while the run went
    on, and the resume that answer queued may have found the run ahead of it and stopped, so resume again."""
    if waiting_on is None or record["status"] != RUNNING or not 0 <= waiting_on < len(record["ops"]):
        return False
    return record["ops"][waiting_on]["status"] not in (WAITING, RETRYING)


def _matches(pattern: Pattern, data: bytes) -> bool:
    try:
        return pattern.matches(data)
    except Exception:
        return False
