"""Runs of one workflow that overlap: whatever order their checkpoints land in, the workflow goes on.

The platform's side is driven directly here (a real memory store; the invoker only builds the resume messages),
so each interleaving happens exactly, not by luck of timing.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from tests.backends import OnMemory, OnPostgres, OnSqlite, OpensStore
from triggerfish.runtime.types import PlatformCall
from triggerfish.store import OutgoingMessage, Store, open_store
from triggerfish.workflows.service import Workflows


class Resumes:
    """Builds each invocation message the service asks for, on the queue `fn.<function>`."""

    def message(self, function: str, event: Any, **options: Any) -> tuple[str, OutgoingMessage, str]:
        return f"fn.{function}", OutgoingMessage(orjson.dumps(event)), "r"

    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
        raise AssertionError("not used here")

    async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str:
        raise AssertionError("not used here")


def call(args: dict[str, Any]) -> PlatformCall:
    return PlatformCall(op="workflow", args=args, function="approval", request_id="w1", hop_count=0, traceparent=None)


async def test_a_run_that_ends_on_a_wait_answered_meanwhile_resumes_the_workflow() -> None:
    store = await open_store("memory://")
    workflows = Workflows(store, Resumes())
    await workflows.call(call({"action": "begin", "input": None}), {"action": "begin", "input": None})
    token_op = {"seq": 0, "kind": "callback", "name": "callback", "status": "WAITING", "token": "t", "timeout": None}
    await workflows.call(call({}), {"action": "checkpoint", "id": "w1", "ops": [{"op": token_op, "expect": None}]})
    # The answer comes while the first run goes on: it queues a resume.
    await workflows.complete_operation("w1", 0, "SUCCEEDED", result="yes")
    assert len(await store.queues.receive("fn.approval", max_messages=10)) == 1
    # The first run records its next step; the resumed run, behind it, is told it was superseded.
    step = {"seq": 1, "kind": "step", "name": "notify", "status": "SUCCEEDED", "result": 1}
    first = await workflows.call(call({}), {"action": "checkpoint", "id": "w1", "ops": [{"op": step, "expect": None}]})
    second = await workflows.call(call({}), {"action": "checkpoint", "id": "w1", "ops": [{"op": step, "expect": None}]})
    assert first == {"ok": True}
    assert "operation #2 is SUCCEEDED now" in second["superseded"]
    # The first run then ends on the callback as it saw it (waiting): the platform sees it was answered, resumes.
    ended = await workflows.call(call({}), {"action": "checkpoint", "id": "w1", "ops": [], "waiting_on": 0})
    assert ended == {"ok": True}
    [resume] = await store.queues.receive("fn.approval", max_messages=10, visibility_timeout=60)
    assert orjson.loads(resume.body) == {"triggerfish-workflow": {"id": "w1"}}
    # A run that ends on a wait that still waits queues nothing (its timer or answer will).
    nap = {"seq": 2, "kind": "sleep", "name": "sleep", "status": "WAITING", "seconds": 3600}
    await workflows.call(call({}), {"action": "checkpoint", "id": "w1", "ops": [{"op": nap, "expect": None}]})
    await workflows.call(call({}), {"action": "checkpoint", "id": "w1", "ops": [], "waiting_on": 2})
    assert await store.queues.receive("fn.approval", max_messages=10) == []
    await store.close()


def step_op(seq: int, name: str) -> dict[str, Any]:
    return {"seq": seq, "kind": "step", "name": name, "status": "SUCCEEDED", "result": seq}


async def checkpoint(workflows: Workflows, *ops: dict[str, Any], finish: Any = None) -> Any:
    args: dict[str, Any] = {"action": "checkpoint", "id": "w1", "ops": [{"op": op, "expect": None} for op in ops]}
    if finish is not None:
        args["finish"] = finish
    return await workflows.call(call(args), args)


async def test_a_node_whose_kept_record_went_stale_reads_it_again_and_keeps_every_operation(tmp_path: Any) -> None:
    # Two platforms on one SQLite file (two nodes): each keeps the record it last wrote, and the other's writes
    # make that copy stale. A checkpoint from a stale copy must neither lose the other's operations nor be
    # refused for a history it did not see.
    store = await open_store(f"sqlite:///{tmp_path}/store.db")
    first, second = Workflows(store, Resumes()), Workflows(store, Resumes())
    await first.call(call({"action": "begin", "input": None}), {"action": "begin", "input": None})
    assert len(first.recent) == 1
    assert await checkpoint(second, step_op(0, "a")) == {"ok": True}
    # `first` kept the record with no operations; its checkpoint of the second step still lands after the first.
    assert await checkpoint(first, step_op(1, "b")) == {"ok": True}
    assert first.recent.stale == 1
    # And one that really is behind (the first step again) is refused on the stored record, not the kept one.
    refused = await checkpoint(second, step_op(1, "b"))
    assert "operation #2 is SUCCEEDED now" in refused["superseded"]
    assert await checkpoint(first, finish={"status": "SUCCEEDED", "result": 2}) == {"ok": True}
    record = await first.describe("w1")
    assert [op["name"] for op in record["ops"]] == ["a", "b"]
    assert (record["status"], record["result"]) == ("SUCCEEDED", 2)
    # A finished workflow is no longer kept: nothing checkpoints it again.
    assert len(first.recent) == 0
    await store.close()


async def test_a_workflow_cancelled_through_another_node_refuses_the_next_checkpoint(tmp_path: Any) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/store.db")
    first, second = Workflows(store, Resumes()), Workflows(store, Resumes())
    await first.call(call({"action": "begin", "input": None}), {"action": "begin", "input": None})
    assert await checkpoint(first, step_op(0, "a")) == {"ok": True}
    await second.cancel("w1", "stopped by an operator")
    answer = await checkpoint(first, step_op(1, "b"))
    assert answer == {"superseded": "workflow 'w1' is CANCELLED"}
    record = await second.describe("w1")
    assert record["status"] == "CANCELLED"
    assert [op["name"] for op in record["ops"]] == ["a"]
    await store.close()


class EndedRuns(OpensStore):
    """Its acknowledgement lost in a crash, a run's invocation comes back: its begin answers that this run already
    ended (the wait's own resume goes on), for a run that began the wait and for one that ended on it, seen."""

    async def test_a_run_that_ended_on_a_wait_and_is_delivered_again_is_told_it_ended(self, store: Store) -> None:
        workflows = Workflows(store, Resumes())
        assert "ended" not in await workflows.call(call({"action": "begin", "input": None}), {"action": "begin"})
        nap = {"seq": 0, "kind": "sleep", "name": "sleep", "status": "WAITING", "seconds": 3600}
        ending = {"action": "checkpoint", "id": "w1", "ops": [{"op": nap, "expect": None}], "waiting_on": 0}
        assert await workflows.call(call(ending), ending) == {"ok": True}
        again = await workflows.call(call({"action": "begin", "input": None}), {"action": "begin", "input": None})
        assert again["ended"] is True
        # A resumed run (another invocation) that finds the sleep still waiting ends on it writing no operation.
        resumed = PlatformCall(op="workflow", args={}, function="approval", request_id="r2", hop_count=0)
        assert "ended" not in await workflows.call(resumed, {"action": "begin", "resume": "w1"})
        ends = {"action": "checkpoint", "id": "w1", "ops": [], "waiting_on": 0}
        assert await workflows.call(resumed, ends) == {"ok": True}
        assert (await workflows.call(resumed, {"action": "begin", "resume": "w1"}))["ended"] is True
        assert (await workflows.describe("w1"))["ended_runs"] == ["w1", "r2"]


class TestEndedRunsOnMemory(OnMemory, EndedRuns):
    pass


class TestEndedRunsOnSqlite(OnSqlite, EndedRuns):
    pass


class TestEndedRunsOnPostgres(OnPostgres, EndedRuns):
    pass


async def test_a_finish_sent_with_a_run_s_result_answers_the_run_s_summary() -> None:
    # The run's last checkpoint rides on its result frame (`finish`): the platform writes it and its answer becomes
    # the invocation's result, so it answers what the run would have: the outcome, or RUNNING when another run got
    # ahead of it (the outcome is not written then).
    store = await open_store("memory://")
    workflows = Workflows(store, Resumes())
    await workflows.call(call({"action": "begin", "input": None}), {"action": "begin", "input": None})
    assert await checkpoint(workflows, step_op(0, "one")) == {"ok": True}
    behind = {"action": "finish", "id": "w1", "ops": [{"op": step_op(0, "one"), "expect": None}], "markers": {}}
    behind["finish"] = {"status": "SUCCEEDED", "result": "behind"}
    assert await workflows.call(call(behind), behind) == {"workflow_id": "w1", "status": "RUNNING"}
    assert (await workflows.describe("w1"))["status"] == "RUNNING"
    ahead = {"action": "finish", "id": "w1", "ops": [{"op": step_op(1, "two"), "expect": None}], "markers": {}}
    ahead["finish"] = {"status": "SUCCEEDED", "result": "done"}
    answer = await workflows.call(call(ahead), ahead)
    assert answer == {"workflow_id": "w1", "status": "SUCCEEDED", "result": "done"}
    record = await workflows.describe("w1")
    assert (record["status"], record["result"], [op["name"] for op in record["ops"]]) == (
        "SUCCEEDED",
        "done",
        ["one", "two"],
    )
    await store.close()


class WorkflowSpecs(Resumes):
    """The platform's functions as the service sees them: `approval` a workflow, `plain` not."""

    def __init__(self) -> None:
        self.specs = {"approval": SimpleNamespace(workflow=True), "plain": SimpleNamespace(workflow=False)}


async def test_the_record_read_ahead_for_a_resumed_run_is_the_begin_answer_and_nothing_else_gets_one() -> None:
    store = await open_store("memory://")
    workflows = Workflows(store, WorkflowSpecs())
    await workflows.call(call({"action": "begin", "input": None}), {"action": "begin", "input": None})
    marker = orjson.dumps({"triggerfish-workflow": {"id": "w1"}})
    begun = await workflows.call(call({}), {"action": "begin", "resume": "w1"})
    assert await workflows.prelude("approval", "r2", marker) == {"resume": "w1", **begun}
    # Not a workflow, not a resume marker, no such workflow: nothing is read ahead (the run asks, as it could).
    assert await workflows.prelude("plain", "r2", marker) is None
    assert (
        await workflows.prelude("approval", "r2", orjson.dumps({"triggerfish-workflow": {"id": "w1"}, "x": 1})) is None
    )
    assert await workflows.prelude("approval", "r2", orjson.dumps({"order": 1})) is None
    assert await workflows.prelude("approval", "r2", orjson.dumps({"triggerfish-workflow": {"id": "nope"}})) is None
    # A run whose invocation already ended on a wait (delivered again after a crash) is told so, as begin tells it.
    nap = {"seq": 0, "kind": "sleep", "name": "sleep", "status": "WAITING", "seconds": 3600}
    args = {"action": "checkpoint", "id": "w1", "ops": [{"op": nap, "expect": None}], "waiting_on": 0}
    await workflows.call(PlatformCall("workflow", args, "approval", "r3"), args)
    assert (await workflows.prelude("approval", "r3", marker) or {}).get("ended") is True
    await store.close()
