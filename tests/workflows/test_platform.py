"""Workflows on the real platform: worker processes, a SQLite file, the timers, the bus, the control paths."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from triggerfish.errors import HandlerError
from triggerfish.events.cloudevent import Event
from triggerfish.server.platform import Platform
from triggerfish.workflows import WorkflowNotFoundError, WorkflowStateError

FLOWS = Path(__file__).with_name("flows.py")


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    platform = Platform(str(FLOWS), data_dir=tmp_path / "data")
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


async def until(platform: Platform, workflow_id: str, check: Any, within: float = 30.0) -> dict[str, Any]:
    """The workflow's record once `check(record)` holds (failing after `within` seconds)."""
    deadline = time.monotonic() + within
    while True:
        stored = await platform.workflows.state.get(workflow_id)
        record = None if stored is None else stored.record
        if record is not None and check(record):
            return record
        assert time.monotonic() < deadline, f"workflow {workflow_id} never got there: {record}"
        await asyncio.sleep(0.02)


async def finished(platform: Platform, workflow_id: str, within: float = 30.0) -> dict[str, Any]:
    return await until(platform, workflow_id, lambda r: r["status"] != "RUNNING", within)


def runs(directory: Path) -> list[str]:
    log = directory / "runs.log"
    return log.read_text().split() if log.exists() else []


async def test_a_resumed_run_gets_its_record_with_its_request_and_its_outcome_goes_with_its_result(
    platform: Platform,
) -> None:
    # The runs of a workflow started by the platform (a resume marker) ask it nothing to begin: the dispatcher read
    # the record as it sent the request (Workflows.prelude); and the last checkpoint went with the result (finish).
    actions: list[tuple[str, Any]] = []
    call = platform.workflows.call

    async def counted(platform_call: Any, args: dict[str, Any]) -> Any:
        actions.append((platform_call.request_id, args.get("action")))
        return await call(platform_call, args)

    platform.workflows.call = counted  # type: ignore[method-assign,assignment]
    workflow_id = await platform.workflows.start_workflow("sleeper", {"seconds": 0.05})
    record = await finished(platform, workflow_id)
    assert record["status"] == "SUCCEEDED", record
    # Two runs: one ends on the sleep, the one the timer queues finishes.
    assert [action for _, action in actions] == ["checkpoint", "finish"], actions
    assert len({run for run, _ in actions}) == 2


async def test_steps_run_once_are_checkpointed_and_failures_retried(platform: Platform, tmp_path: Path) -> None:
    workflow_id = await platform.workflows.start_workflow("steps", {"dir": str(tmp_path)})
    record = await finished(platform, workflow_id)
    assert record["status"] == "SUCCEEDED", record
    result = record["result"]
    assert (result["total"], result["lucky"], result["failure"], result["id"]) == (
        3,
        "second time lucky",
        "ValueError",
        36,
    )
    # Every resumption replayed the history: no step that succeeded ran again.
    assert sorted(runs(tmp_path)) == ["add", "broken", "broken", "flaky", "flaky"]
    ops = {op["name"]: op for op in record["ops"]}
    assert (ops["add"]["status"], ops["add"]["attempts"]) == ("SUCCEEDED", 1)
    assert (ops["flaky"]["status"], ops["flaky"]["attempts"]) == ("SUCCEEDED", 2)
    assert (ops["broken"]["status"], ops["broken"]["attempts"]) == ("FAILED", 2)
    assert ops["broken"]["error"]["errorMessage"] == "never works"
    assert ops["add"]["started"] <= ops["add"]["ended"]


async def test_a_sleep_holds_no_worker_and_the_timer_resumes_it(platform: Platform) -> None:
    began = time.monotonic()
    workflow_id = await platform.workflows.start_workflow("sleeper", {"seconds": 1.0})
    await until(platform, workflow_id, lambda r: r["ops"] and r["ops"][-1]["kind"] == "sleep")
    deadline = time.monotonic() + 5
    while platform.in_flight():  # the run that reached the sleep is ending
        assert time.monotonic() < deadline, "the run that reached the sleep did not end"
        await asyncio.sleep(0.01)
    assert platform.in_flight() == 0  # asleep, the workflow runs nowhere
    record = await finished(platform, workflow_id)
    assert record["status"] == "SUCCEEDED"
    assert record["result"] >= 1.0
    assert time.monotonic() - began >= 1.0


async def test_a_wait_gets_the_first_matching_event_published_after_it_began(platform: Platform) -> None:
    await platform.publish("default", [Event.create("payment.done", "/tests", data={"order": 7, "early": True})])
    workflow_id = await platform.workflows.start_workflow("payment", {"order": 7})
    await until(platform, workflow_id, lambda r: r["ops"] and r["ops"][0]["status"] == "WAITING")
    await platform.publish("default", [Event.create("payment.done", "/tests", data={"order": 8})])  # another order's
    await platform.publish("default", [Event.create("payment.done", "/tests", data={"order": 7, "amount": 30})])
    record = await finished(platform, workflow_id)
    assert record["result"] == {"order": 7, "amount": 30}
    assert await platform.workflows.state.waits() == []


async def test_a_wait_times_out(platform: Platform) -> None:
    workflow_id = await platform.workflows.start_workflow("payment", {"order": 9, "timeout": 0.3})
    record = await finished(platform, workflow_id)
    assert record["result"] == "timed out"
    assert record["ops"][0]["status"] == "TIMED_OUT"
    assert await platform.workflows.state.waits() == []  # the wait went with its timeout


async def _token(platform: Platform, workflow_id: str) -> str:
    record = await until(platform, workflow_id, lambda r: any(op["kind"] == "callback" for op in r["ops"]))
    return str(next(op["token"] for op in record["ops"] if op["kind"] == "callback"))


async def test_a_callback_completed_with_success_or_failure(platform: Platform, tmp_path: Path) -> None:
    approved = await platform.workflows.start_workflow("approval", {"dir": str(tmp_path)})
    refused = await platform.workflows.start_workflow("approval", {"dir": str(tmp_path)})
    await platform.workflows.complete_callback(await _token(platform, approved), result={"by": "ann"})
    error = {"errorType": "Refused", "errorMessage": "over budget"}
    await platform.workflows.complete_callback(await _token(platform, refused), error=error)
    assert (await finished(platform, approved))["result"] == {"approved": {"by": "ann"}}
    assert (await finished(platform, refused))["result"] == {"refused": error}
    with pytest.raises(WorkflowStateError, match="is SUCCEEDED"):
        await platform.workflows.complete_callback(await _token(platform, approved), result=1)


async def test_a_callback_token_that_is_not_one_is_refused(platform: Platform) -> None:
    with pytest.raises(WorkflowNotFoundError, match="not a callback token"):
        await platform.workflows.complete_callback("not-a-token!", result=1)
    workflow_id = await platform.workflows.start_workflow("approval", {"dir": "/tmp", "timeout": 60})
    token = await _token(platform, workflow_id)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(WorkflowNotFoundError):
        await platform.workflows.complete_callback(forged, result=1)


async def test_a_handler_starts_a_workflow_once_per_id_and_only_a_workflow(platform: Platform) -> None:
    start = {"function": "child", "input": 5, "id": "started-by-a-handler"}
    assert await platform.invoke("starter", start) == "started-by-a-handler"
    # The handler run again (a retried request): the same workflow goes on, none new starts.
    assert await platform.invoke("starter", start) == "started-by-a-handler"
    record = await finished(platform, "started-by-a-handler")
    assert (record["status"], record["result"]) == ("SUCCEEDED", 105)
    assert [r["id"] for r in await platform.workflows.records(function="child")] == ["started-by-a-handler"]

    with pytest.raises(HandlerError, match=r"no workflow named 'quote'; the app's workflows are: .*child") as refused:
        await platform.invoke("starter", {"function": "quote", "input": {"items": 1}})
    assert "fan" in str(refused.value)


async def test_map_parallel_children_and_invoke(platform: Platform) -> None:
    workflow_id = await platform.workflows.start_workflow("fan", {"items": [1, 2, 3, 4, 5]})
    record = await finished(platform, workflow_id, within=60)
    assert record["status"] == "SUCCEEDED", record
    assert record["result"] == {
        "squares": [1, 4, 9, 16, 25],
        "branches": ["a", "b"],
        "some": [1, 2, 4],
        "refused": ["three is refused"],
        "child": 101,
        "quote": {"price": 30},
    }
    children = [r for r in await platform.workflows.records() if r["parent"] and r["parent"]["id"] == workflow_id]
    assert len(children) == 5 + 2 + 4 + 1 + 1
    square_batch = record["ops"][0]["batch"]
    assert square_batch["max_concurrency"] == 2


async def test_a_saga_compensates_in_reverse_when_a_step_fails(platform: Platform, tmp_path: Path) -> None:
    workflow_id = await platform.workflows.start_workflow("saga", {"dir": str(tmp_path), "order": "o1"})
    record = await finished(platform, workflow_id)
    assert record["result"] == "undone: no courier today"
    assert runs(tmp_path) == ["reserve", "charge", "ship", "refund", "release"]
    assert [op["name"] for op in record["ops"]] == ["reserve", "charge", "ship", "undo charge", "undo reserve"]


async def test_cancel_stops_a_sleeping_workflow_and_says_what_cannot_be_cancelled(platform: Platform) -> None:
    workflow_id = await platform.workflows.start_workflow("long_sleep", None)
    await until(platform, workflow_id, lambda r: bool(r["ops"]))
    record = await platform.workflows.cancel(workflow_id, "no longer needed")
    assert record["status"] == "CANCELLED"
    assert record["error"]["errorMessage"] == "no longer needed"
    with pytest.raises(WorkflowStateError, match="has finished"):
        await platform.workflows.cancel(workflow_id)
    with pytest.raises(WorkflowNotFoundError):
        await platform.workflows.cancel("no-such-workflow")


async def test_a_year_long_sleep_is_one_delayed_timer(platform: Platform) -> None:
    workflow_id = await platform.workflows.start_workflow("long_sleep", None)
    record = await until(platform, workflow_id, lambda r: bool(r["ops"]))
    assert record["ops"][0]["due"] - record["ops"][0]["started"] == pytest.approx(365 * 24 * 3600, abs=5)
    stats = await platform.store.queues.stats("triggerfish.workflow-timers")
    assert stats.delayed == 1


async def test_a_long_workflow_resumes_past_the_loop_guard_and_keys_are_stable(platform: Platform) -> None:
    workflow_id = await platform.workflows.start_workflow("many_resumptions", None)
    record = await finished(platform, workflow_id)
    assert record["status"] == "SUCCEEDED", record
    assert record["result"] == [f"{workflow_id}#21", f"{workflow_id}#22"]


async def test_cancelling_a_waiting_workflow_drops_its_event_wait(platform: Platform) -> None:
    workflow_id = await platform.workflows.start_workflow("payment", {"order": 11})
    await until(platform, workflow_id, lambda r: bool(r["ops"]))
    assert len(await platform.workflows.state.waits()) == 1
    await platform.workflows.cancel(workflow_id)
    assert await platform.workflows.state.waits() == []


async def test_a_result_over_the_store_s_record_limit_fails_the_workflow_saying_so(platform: Platform) -> None:
    workflow_id = await platform.workflows.start_workflow("huge", None)
    record = await finished(platform, workflow_id)
    assert record["status"] == "FAILED"
    assert record["error"]["errorType"] == "WorkflowError"
    assert "could not keep this checkpoint" in record["error"]["errorMessage"]
    assert "limit" in record["error"]["errorMessage"]


async def test_a_workflows_runs_and_steps_are_one_trace(platform: Platform, tmp_path: Path) -> None:
    from triggerfish.observe.spans import ids_of
    from triggerfish.observe.traces import trace_spans

    told: list[str] = []
    # What OTLP export watches (observe/otlp.py): the workflow's operations are told as they are written.
    platform.span_listeners.append(lambda span: told.append(span.name))
    workflow_id = await platform.workflows.start_workflow("steps", {"dir": str(tmp_path)})
    record = await finished(platform, workflow_id)
    trace_id, root = ids_of(record["trace"])
    deadline = time.monotonic() + 30
    while True:  # the last run's invocation record lands as it ends
        spans = await trace_spans(platform.store, trace_id)
        runs_ = {span.span_id for span in spans if span.name == "steps"}
        if len(runs_) >= 3:
            break
        assert time.monotonic() < deadline, [s.name for s in spans]
        await asyncio.sleep(0.05)
    steps = [span for span in spans if span.name.startswith("step ")]
    # Each attempt of each step is a span under the run that carried it out; a failed attempt is an error.
    assert sorted(span.name for span in steps) == ["step add", "step broken", "step broken", "step flaky", "step flaky"]
    assert all(span.parent_span_id in runs_ for span in steps)
    assert sorted(span.status for span in steps if span.name == "step flaky") == ["error", "ok"]
    assert {span.parent_span_id for span in spans if span.name == "steps"} <= {root, *runs_}
    assert sorted(name for name in told if name.startswith("step ")) == sorted(span.name for span in steps)


async def test_a_run_delivered_again_after_it_ended_on_a_sleep_runs_nothing(platform: Platform, tmp_path: Path) -> None:
    # A platform that dies after a run checkpointed its sleep but before that run's invocation was acknowledged
    # gets the invocation back when its lease ends, which may be when the sleep's own resume runs. Delivered here
    # by hand while the resumed run is inside the next step: it must not run that step a second time.
    workflow_id = await platform.workflows.start_workflow("nap_then_block", {"dir": str(tmp_path), "sleep": 0.3})
    slept = await until(platform, workflow_id, lambda r: r["ops"] and r["ops"][-1]["kind"] == "sleep")
    [first_run] = slept["ended_runs"]
    await asyncio.wait_for(_handled_again(platform, None, tmp_path), 30)
    queue, message, request_id = platform.message(
        "nap_then_block", {"triggerfish-workflow": {"id": workflow_id}}, trigger="workflow", request_id=first_run
    )
    assert request_id == first_run
    await platform.store.queues.send_many(queue, [message])
    # Handled once the queue holds only the resumed run, still inside its step (or, as before the fix, once a
    # second run of the step began).
    await asyncio.wait_for(_handled_again(platform, queue, tmp_path), 30)
    (tmp_path / "go").touch()
    done = await finished(platform, workflow_id)
    assert (done["status"], done["result"]) == ("SUCCEEDED", "go")
    assert runs(tmp_path) == ["waiting-go"]


async def _handled_again(platform: Platform, queue: str | None, directory: Path) -> None:
    """Until the step is running (no `queue`), or until `queue` holds only the run inside it (or a second run of
    the step began)."""
    while True:
        began = runs(directory).count("waiting-go")
        if queue is None:
            if began:
                return
        else:
            stats = await platform.store.queues.stats(queue)
            if (stats.visible == stats.delayed == 0 and stats.in_flight == 1) or began > 1:
                return
        await asyncio.sleep(0.02)
