"""Which checkpoints a run asks of the platform, and when: a step's success is written before anything else acts
(the next step or invoke, a wait, the outcome), and a workflow's last step rides with its outcome.

The run is driven through `run_workflow` with a context whose platform calls are recorded in one log with the
steps' own runs, so the order of the two is what is checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from triggerfish.workflows.context import WorkflowContext, run_workflow
from triggerfish.workflows.engine import new_record


class Recorder:
    """The run's `context`: answers `begin` with a new record and every checkpoint with ok, logging both."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def call_platform(self, op: str, args: dict[str, Any]) -> Any:
        if args["action"] == "begin":
            self.log.append("begin")
            return {"record": new_record("w1", "flow", args.get("input"), 0.0)}
        ops = [(entry["op"]["name"], entry["op"]["status"]) for entry in args["ops"]]
        self.log.append(("checkpoint", ops, (args.get("finish") or {}).get("status")))
        return {"ok": True}


def three_steps(log: list[Any]) -> Callable[[WorkflowContext, Any], list[str]]:
    """A workflow of steps a, b and c, each noting in `log` that it ran."""

    def act(name: str) -> str:
        log.append(f"run {name}")
        return name

    def flow(ctx: WorkflowContext, _: Any) -> list[str]:
        return [ctx.step(act, "a", name="a"), ctx.step(act, "b", name="b"), ctx.step(act, "c", name="c")]

    return flow


def test_each_success_is_written_before_the_next_step_runs_and_the_last_with_the_outcome() -> None:
    log: list[Any] = []
    flow = three_steps(log)
    summary = run_workflow(flow, None, Recorder(log))
    assert summary == {"workflow_id": "w1", "status": "SUCCEEDED", "result": ["a", "b", "c"]}
    assert log == [
        "begin",
        "run a",
        ("checkpoint", [("a", "SUCCEEDED")], None),
        "run b",
        ("checkpoint", [("b", "SUCCEEDED")], None),
        "run c",
        ("checkpoint", [("c", "SUCCEEDED")], "SUCCEEDED"),
    ]


class Deferring(Recorder):
    """A worker's context: the run's last checkpoint goes with its result (`finish_with_platform_call`)."""

    def finish_with_platform_call(self, op: str, args: dict[str, Any]) -> bool:
        ops = [(entry["op"]["name"], entry["op"]["status"], entry["op"].get("result")) for entry in args["ops"]]
        self.log.append((op, args["action"], ops, args["finish"]))
        return True


def test_in_a_worker_the_last_step_and_the_outcome_go_with_the_result_not_in_a_call_of_their_own() -> None:
    log: list[Any] = []
    flow = three_steps(log)
    run_workflow(flow, None, Deferring(log))
    assert log == [
        "begin",
        "run a",
        ("checkpoint", [("a", "SUCCEEDED")], None),
        "run b",
        ("checkpoint", [("b", "SUCCEEDED")], None),
        "run c",
        ("workflow", "finish", [("c", "SUCCEEDED", "c")], {"status": "SUCCEEDED", "result": ["a", "b", "c"]}),
    ]


def test_a_resumed_run_takes_the_record_sent_with_its_request_and_asks_when_none_came() -> None:
    log: list[Any] = []

    def flow(ctx: WorkflowContext, _: Any) -> str:
        return str(ctx.step(lambda: "done", name="a"))

    marker = {"triggerfish-workflow": {"id": "w1"}}
    context = Recorder(log)
    context.prelude = {"resume": "w1", "record": new_record("w1", "flow", None, 0.0)}  # type: ignore[attr-defined]
    assert run_workflow(flow, marker, context)["result"] == "done"
    assert log == [("checkpoint", [("a", "SUCCEEDED")], "SUCCEEDED")]
    # One read for another workflow's run is not this run's record: it asks.
    log.clear()
    context.prelude = {"resume": "w2", "record": new_record("w2", "flow", None, 0.0)}  # type: ignore[attr-defined]
    run_workflow(flow, marker, context)
    assert log[0] == "begin"


def test_a_success_goes_with_the_wait_that_follows_it_and_with_a_failed_outcome() -> None:
    log: list[Any] = []

    def sleeper(ctx: WorkflowContext, _: Any) -> None:
        ctx.step(lambda: 1, name="one")
        ctx.sleep(60)

    assert run_workflow(sleeper, None, Recorder(log))["status"] == "RUNNING"
    assert log == ["begin", ("checkpoint", [("one", "SUCCEEDED"), ("sleep", "WAITING")], None)]

    log.clear()

    def broken(ctx: WorkflowContext, _: Any) -> None:
        ctx.step(lambda: 1, name="one")
        raise RuntimeError("after the step")

    summary = run_workflow(broken, None, Recorder(log))
    assert summary["status"] == "FAILED"
    assert summary["error"]["errorMessage"] == "after the step"
    assert log == ["begin", ("checkpoint", [("one", "SUCCEEDED")], "FAILED")]
