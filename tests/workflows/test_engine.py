"""The replay model and the checkpoint rules, as pure functions: no store, no process."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from triggerfish.workflows.engine import (
    Rejected,
    apply_checkpoint,
    cancel,
    child_finished,
    complete_wait,
    new_record,
    retry_due,
    start_batch,
)
from triggerfish.workflows.errors import NonDeterminismError
from triggerfish.workflows.history import Replay, batch_outcome, batch_state, check_wait_seconds


def step(seq: int, name: str, status: str = "SUCCEEDED", **more: object) -> dict[str, object]:
    return {"seq": seq, "kind": "step", "name": name, "status": status, **more}


def test_replay_returns_recorded_operations_in_order_then_none_at_the_frontier() -> None:
    replay = Replay("w1", [step(0, "reserve", result=1), step(1, "charge", result=2)], {})
    assert replay.replaying
    assert replay.next("step", "reserve")["result"] == 1  # type: ignore[index]
    assert replay.next("step", "charge")["result"] == 2  # type: ignore[index]
    assert not replay.replaying
    assert replay.next("step", "ship") is None


def test_a_different_operation_at_a_recorded_position_names_both() -> None:
    replay = Replay("w1", [step(0, "reserve"), step(1, "charge")], {})
    replay.next("step", "reserve")
    with pytest.raises(NonDeterminismError) as caught:
        replay.next("sleep", "sleep")
    message = str(caught.value)
    assert "operation #2 is step 'charge' in the history" in message
    assert "asks for sleep 'sleep'" in message
    assert "ctx.version" in message
    assert caught.value.position == 2


def test_a_renamed_step_is_non_deterministic_too() -> None:
    replay = Replay("w1", [step(0, "reserve")], {})
    with pytest.raises(NonDeterminismError, match=r"step 'reserve' in the history.*step 'reserve_stock'"):
        replay.next("step", "reserve_stock")


def test_code_that_returns_before_its_history_ends_is_non_deterministic() -> None:
    replay = Replay("w1", [step(0, "reserve"), step(1, "charge")], {})
    replay.next("step", "reserve")
    with pytest.raises(NonDeterminismError, match=r"the code returned, but operation #2 \(step 'charge'\)"):
        replay.finish()


def test_a_version_marker_gives_new_executions_the_newest_version_and_old_histories_version_0() -> None:
    fresh = Replay("new", [], {})
    assert fresh.version("payment-v2", 0, 2) == 2
    assert fresh.new_markers == {"payment-v2": 2}
    old = Replay("old", [step(0, "reserve"), step(1, "charge")], {})
    assert old.version("payment-v2", 0, 2) == 0  # the history was made before the marker existed
    again = Replay("old", [step(0, "reserve")], {"payment-v2": 0})
    assert again.version("payment-v2", 0, 2) == 0
    assert again.new_markers == {}


def test_a_recorded_version_the_code_no_longer_supports_is_refused() -> None:
    replay = Replay("w", [], {"payment-v2": 0})
    with pytest.raises(NonDeterminismError, match=r"version 0 of change 'payment-v2'.*supports versions 1 to 2"):
        replay.version("payment-v2", 1, 2)


@pytest.mark.parametrize(
    ("children", "minimum", "tolerated", "outcome"),
    [
        (["SUCCEEDED", "SUCCEEDED", "SUCCEEDED"], None, None, "SUCCEEDED"),
        (["SUCCEEDED", "RUNNING", "RUNNING"], None, None, None),
        (["FAILED", "RUNNING", "RUNNING"], None, None, "FAILED"),  # the first failure fails the batch by default
        (["FAILED", "SUCCEEDED", "SUCCEEDED"], None, 1, "SUCCEEDED"),
        (["FAILED", "FAILED", "SUCCEEDED"], None, 1, "FAILED"),
        (["SUCCEEDED", "RUNNING", "RUNNING"], 1, None, "SUCCEEDED"),
        (["FAILED", "FAILED", "RUNNING"], 2, None, "FAILED"),  # two can no longer succeed
        (["FAILED", "SUCCEEDED", "RUNNING"], 2, None, None),
    ],
)
def test_batch_completion_criteria(
    children: list[str], minimum: int | None, tolerated: int | None, outcome: str | None
) -> None:
    state = batch_state(3, None, minimum, tolerated)
    state["children"] = children
    assert batch_outcome(state) == outcome


def test_a_batch_starts_no_more_children_than_its_concurrency() -> None:
    record = new_record("p", "f", None, 0.0)
    spec: dict[str, Any] = {"mode": "map", "function": "f", "ref": "m:f", "items": [1, 2, 3, 4, 5]}
    spec.update(max_concurrency=2, min_successful=None, tolerated_failures=None)
    op = {"seq": 0, "kind": "batch", "name": "m", "status": "WAITING", "batch": spec}
    record, effects = apply_checkpoint(record, [{"op": op, "expect": None}], {}, None, 10.0)
    assert effects.batches == [0]
    assert start_batch(record, 0) == [0, 1]
    record, starting, outcome = child_finished(record, 0, 0, "SUCCEEDED", 2, None, 11.0)
    assert (starting, outcome) == ([2], None)
    for index in (1, 2, 3, 4):
        if record["ops"][0]["batch"]["children"][index] is None:
            record["ops"][0]["batch"]["children"][index] = "RUNNING"
        record, starting, outcome = child_finished(record, 0, index, "SUCCEEDED", index * 2, None, 12.0)
    assert outcome == "SUCCEEDED"
    assert record["ops"][0]["status"] == "SUCCEEDED"
    assert record["ops"][0]["batch"]["results"] == [2, 2, 4, 6, 8]


def test_a_checkpoint_whose_belief_no_longer_holds_is_rejected_and_changes_nothing() -> None:
    record = new_record("w", "f", {"x": 1}, 0.0)
    record, _ = apply_checkpoint(record, [{"op": step(0, "a"), "expect": None}], {}, None, 1.0)
    with pytest.raises(Rejected, match="operation #1 is SUCCEEDED now, not None"):
        apply_checkpoint(record, [{"op": step(0, "a"), "expect": None}], {}, None, 2.0)
    with pytest.raises(Rejected, match="does not follow the history"):
        apply_checkpoint(record, [{"op": step(5, "b"), "expect": None}], {}, None, 2.0)
    assert len(record["ops"]) == 1


def test_a_cancelled_workflow_takes_no_checkpoint() -> None:
    record = cancel(new_record("w", "f", None, 0.0), 1.0, "by request")
    assert record["status"] == "CANCELLED"
    with pytest.raises(Rejected, match="is CANCELLED"):
        apply_checkpoint(record, [{"op": step(0, "a"), "expect": None}], {}, None, 2.0)
    with pytest.raises(Rejected, match="has finished"):
        cancel(record, 3.0, "again")


def test_waits_get_their_due_time_and_timers_from_the_platform_clock() -> None:
    record = new_record("w", "f", None, 0.0)
    sleep = {"seq": 0, "kind": "sleep", "name": "sleep", "status": "WAITING", "seconds": 30.0}
    record, effects = apply_checkpoint(record, [{"op": sleep, "expect": None}], {}, None, 100.0)
    assert record["ops"][0]["due"] == 130.0
    [timer] = effects.timers
    assert (timer.workflow_id, timer.seq, timer.due, timer.kind) == ("w", 0, 130.0, "wake")
    event = {
        "seq": 1,
        "kind": "event",
        "name": "paid",
        "status": "WAITING",
        "pattern": {"type": ["paid"]},
        "bus": "default",
        "timeout": 60.0,
    }
    record = complete_wait(record, 0, "SUCCEEDED", 130.0)
    record, effects = apply_checkpoint(record, [{"op": event, "expect": None}], {}, None, 200.0)
    assert effects.waits == [(1, "default", {"type": ["paid"]})]
    assert [(t.kind, t.due) for t in effects.timers] == [("timeout", 260.0)]
    timed_out = complete_wait(record, 1, "TIMED_OUT", 260.0)
    with pytest.raises(Rejected, match="is TIMED_OUT, not waiting"):
        complete_wait(timed_out, 1, "SUCCEEDED", 261.0, result={"late": True})


def test_a_retrying_step_becomes_ready_when_its_timer_fires() -> None:
    record = new_record("w", "f", None, 0.0)
    failed = step(0, "charge", "RETRYING", attempts=1, delay=2.0, error={"errorType": "E"})
    record, effects = apply_checkpoint(record, [{"op": failed, "expect": None}], {}, None, 10.0)
    assert [(t.kind, t.due) for t in effects.timers] == [("retry", 12.0)]
    assert retry_due(record, 0)["ops"][0]["status"] == "READY"
    with pytest.raises(Rejected):
        retry_due(retry_due(record, 0), 0)


@pytest.mark.parametrize(("value", "seconds"), [(0, 0.0), (1.5, 1.5), (datetime.timedelta(days=365), 365 * 86400.0)])
def test_waits_take_seconds_or_a_timedelta_up_to_a_year(value: object, seconds: float) -> None:
    assert check_wait_seconds(value, "sleep") == seconds


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "10", True, datetime.timedelta(days=400)])
def test_bad_wait_durations_are_refused_with_the_reason(value: object) -> None:
    with pytest.raises(ValueError, match="sleep must be"):
        check_wait_seconds(value, "sleep")


def test_children_still_running_when_a_batch_is_decided_are_cancelled_in_its_result() -> None:
    record = new_record("p", "f", None, 0.0)
    spec: dict[str, Any] = {"mode": "map", "function": "f", "ref": "m:f", "items": [1, 2, 3]}
    spec.update(max_concurrency=None, min_successful=None, tolerated_failures=None)
    op = {"seq": 0, "kind": "batch", "name": "m", "status": "WAITING", "batch": spec}
    record, _ = apply_checkpoint(record, [{"op": op, "expect": None}], {}, None, 1.0)
    assert start_batch(record, 0) == [0, 1, 2]
    record, starting, outcome = child_finished(record, 0, 1, "FAILED", None, {"errorType": "E"}, 2.0)
    assert (starting, outcome) == ([], "FAILED")
    assert record["ops"][0]["batch"]["children"] == ["CANCELLED", "FAILED", "CANCELLED"]
