"""AWS durable executions over the engine's records, as pure functions: the SDK's updates in, AWS's shapes out."""

from __future__ import annotations

from typing import Any

import pytest

from triggerfish.app import App
from triggerfish.errors import DeclarationError
from triggerfish.workflows import aws_ops
from triggerfish.workflows.context import parse_token
from triggerfish.workflows.durable import is_sdk_durable
from triggerfish.workflows.engine import apply_checkpoint, new_record

NOW = 1_000.0


def record(*updates: list[dict[str, Any]]) -> dict[str, Any]:
    """A durable execution's record after each list of updates was checkpointed in turn."""
    made = new_record("exec-1", "order", {"n": 1}, NOW)
    made.update(api=aws_ops.API, run=1, lambda_name="shop-order")
    for batch in updates:
        upserts, finish = aws_ops.translate(made, batch)
        aws_ops.stamp_times(upserts, NOW)
        before, (made, _) = made, apply_checkpoint(made, upserts, {}, finish, NOW)
        aws_ops.stamp_changes(before, made)
    return made


def update(op_id: str, kind: str, action: str, **more: Any) -> dict[str, Any]:
    return {"Id": op_id, "Type": kind, "Action": action, **more}


def test_a_step_started_then_succeeded_is_one_operation_with_one_attempt() -> None:
    done = record(
        [update("s1", "STEP", "START", Name="reserve", SubType="Step")],
        [update("s1", "STEP", "SUCCEED", Payload='{"ok": true}')],
    )
    [op] = done["ops"]
    assert (op["kind"], op["name"], op["status"], op["attempts"], op["result"]) == (
        "step",
        "reserve",
        "SUCCEEDED",
        1,
        '{"ok": true}',
    )
    [execution, step] = aws_ops.operations(done, millis=True)
    assert execution == {
        "Id": "exec-1",
        "Type": "EXECUTION",
        "Status": "STARTED",
        "StartTimestamp": 1_000_000,
        "ExecutionDetails": {"InputPayload": '{"n":1}'},
    }
    assert step["Name"] == "reserve"
    assert step["SubType"] == "Step"
    assert step["StepDetails"] == {"Attempt": 1, "Result": '{"ok": true}'}


def test_an_unnamed_operation_is_answered_without_a_name_as_the_sdk_replays_it() -> None:
    done = record([update("c1", "STEP", "START", SubType="WaitForCondition")])
    assert "Name" not in aws_ops.operations(done, millis=False)[1]


def test_a_retry_keeps_its_payload_and_is_pending_until_its_timer_makes_it_ready() -> None:
    made = record([update("s1", "STEP", "START")])
    upserts, _ = aws_ops.translate(
        made, [update("s1", "STEP", "RETRY", Payload="2", StepOptions={"NextAttemptDelaySeconds": 5})]
    )
    after, effects = apply_checkpoint(made, upserts, {}, None, NOW)
    [(timer)] = effects.timers
    assert (timer.kind, timer.due) == ("retry", NOW + 5)
    step = aws_ops.operations(after, millis=True)[1]
    assert step["Status"] == "PENDING"
    assert step["StepDetails"] == {"Attempt": 1, "Result": "2", "NextAttemptTimestamp": 1_005_000}


def test_waits_callbacks_and_invokes_begin_with_the_timers_they_need() -> None:
    made = record()
    batch = [
        update("w1", "WAIT", "START", WaitOptions={"WaitSeconds": 60}),
        update("c1", "CALLBACK", "START", CallbackOptions={"TimeoutSeconds": 300, "HeartbeatTimeoutSeconds": 30}),
        update("i1", "CHAINED_INVOKE", "START", Payload="{}", ChainedInvokeOptions={"FunctionName": "shop-ship"}),
    ]
    upserts, _ = aws_ops.translate(made, batch)
    after, effects = apply_checkpoint(made, upserts, {}, None, NOW)
    assert sorted((t.kind, t.due) for t in effects.timers) == [
        ("invoke", NOW),
        ("timeout", NOW + 30),
        ("wake", NOW + 60),
    ]
    callback = aws_ops.operations(after, millis=False)[2]
    assert callback["Status"] == "STARTED"
    # The callback's id is a callback token of the engine: either API answers it.
    assert parse_token(callback["CallbackDetails"]["CallbackId"])[:2] == ("exec-1", 1)


def test_an_update_repeating_what_the_record_has_changes_nothing() -> None:
    made = record([update("w1", "WAIT", "START", WaitOptions={"WaitSeconds": 60})])
    # A run that had not seen the wait begin starts it again: the wait's due time stays as it was.
    upserts, finish = aws_ops.translate(made, [update("w1", "WAIT", "START", WaitOptions={"WaitSeconds": 60})])
    assert (upserts, finish) == ([], None)


def test_the_execution_update_finishes_it_with_its_result_as_json() -> None:
    done = record([update("execution-result-1", "EXECUTION", "SUCCEED", Payload='{"total": 3}')])
    assert (done["status"], done["result"]) == ("SUCCEEDED", {"total": 3})
    failed = record([update("x", "EXECUTION", "FAIL", Error={"ErrorType": "Boom", "ErrorMessage": "no"})])
    assert failed["error"] == {"errorType": "Boom", "errorMessage": "no"}
    assert aws_ops.execution_status(failed) == "FAILED"


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ([update("a", "TASK", "START")], "Updates[0]: Type 'TASK' is not one of EXECUTION"),
        ([update("a", "WAIT", "SUCCEED")], "Updates[0]: a WAIT operation takes no 'SUCCEED' action"),
        ([update("a", "WAIT", "START", WaitOptions={"WaitSeconds": -1})], "WaitOptions.WaitSeconds is a whole number"),
        ([update("a", "CHAINED_INVOKE", "START")], "names ChainedInvokeOptions.FunctionName"),
        ([{"Type": "STEP"}], "Updates[0]: an update is an object with an Id"),
        (
            [update("a", "STEP", "START"), update("a", "WAIT", "START")],
            "Updates[1]: operation 'a' is a STEP, not a WAIT",
        ),
        ([update("x", "EXECUTION", "START")], "an EXECUTION update SUCCEEDs or FAILs"),
    ],
)
def test_bad_updates_name_the_update_and_the_fix(bad: list[dict[str, Any]], expected: str) -> None:
    with pytest.raises(aws_ops.BadUpdate, match=expected.replace("[", r"\[").replace("]", r"\]")):
        aws_ops.translate(record(), bad)


def test_tokens_and_markers_round_trip_and_refuse_what_they_did_not_give() -> None:
    token = aws_ops.checkpoint_token("exec-1", 3, 7)
    assert aws_ops.parse_checkpoint_token(token) == ("exec-1", 3, 7, None)
    assert aws_ops.parse_checkpoint_token(aws_ops.checkpoint_token("exec-1", 3, 7, 12)) == ("exec-1", 3, 7, 12)
    with pytest.raises(ValueError, match="not a checkpoint token"):
        aws_ops.parse_checkpoint_token("bm90IGEgdG9rZW4=")
    with pytest.raises(ValueError, match="not a checkpoint token"):
        aws_ops.parse_checkpoint_token(aws_ops.checkpoint_token("exec-1", 3, 7, -1))
    with pytest.raises(aws_ops.BadUpdate, match=r"Marker 'since\.x\.1'"):
        aws_ops.state_page(record(), "since.x.1", 10)
    assert aws_ops.page(list(range(5)), None, 2) == ([0, 1], "2")
    assert aws_ops.page(list(range(5)), "4", 2) == ([4], None)
    with pytest.raises(aws_ops.BadUpdate, match="Marker 'x'"):
        aws_ops.page([1], "x", 2)


def test_history_tells_each_operation_start_and_end() -> None:
    done = record(
        [update("s1", "STEP", "START", Name="a")],
        [update("s1", "STEP", "SUCCEED", Payload="1")],
        [update("x", "EXECUTION", "SUCCEED", Payload="1")],
    )
    events = aws_ops.history(done, include_data=True)
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "StepStarted",
        "StepSucceeded",
        "ExecutionSucceeded",
    ]
    assert events[2]["StepSucceededDetails"] == {"Result": {"Payload": "1", "Truncated": False}}
    assert aws_ops.history(done, include_data=False)[0]["ExecutionStartedDetails"] == {"Input": {"Truncated": True}}


def test_durable_is_declared_on_any_decorator_and_the_sdks_decorator_is_recognized() -> None:
    from aws_durable_execution_sdk_python import durable_execution

    app = App("shop")

    @app.http("POST", "/orders", durable=True)
    def by_flag(event: Any, context: Any) -> Any:
        return event

    @app.on_event({"source": ["shop"]})
    @durable_execution
    def by_sdk(event: Any, context: Any) -> Any:
        return event

    @app.function
    def plain(event: Any, context: Any) -> Any:
        return event

    assert is_sdk_durable(by_sdk)
    assert not is_sdk_durable(plain)
    functions = app.functions
    assert functions["by_flag"].handler is not by_flag  # wrapped: it runs as a durable execution
    assert functions["by_sdk"].handler is not by_sdk
    assert functions["plain"].handler is plain


def test_durable_and_workflow_together_and_a_bad_flag_are_refused() -> None:
    app = App("shop")
    with pytest.raises(DeclarationError, match="durable is True or False, not 'yes'"):
        app.function(durable="yes", name="bad")(lambda event, context: None)

    @app.workflow(durable=True)
    def both(ctx: Any, order: Any) -> Any:
        return order

    with pytest.raises(DeclarationError, match=r"@app\.workflow and durable=True are two ways"):
        _ = app.functions


def checkpointed(made: dict[str, Any], batch: list[dict[str, Any]]) -> dict[str, Any]:
    """`made` after one checkpoint of `batch`, stamped as the workflow service stamps every write."""
    upserts, finish = aws_ops.translate(made, batch)
    aws_ops.stamp_times(upserts, NOW)
    after, _ = apply_checkpoint(made, upserts, {}, finish, NOW)
    aws_ops.stamp_changes(made, after)
    return after


def ids(page: list[dict[str, Any]]) -> list[str]:
    return [op["Id"] for op in page]


def test_a_checkpoint_answers_what_changed_since_its_token_however_long_the_execution() -> None:
    made = record()
    for n in range(300):
        made = checkpointed(made, [update(f"s{n}", "STEP", "SUCCEED", Payload=str(n))])
    seen = aws_ops.revision(made)
    assert seen == 300
    full, marker = aws_ops.state_page(made, None, 1000)
    assert len(full) == 301
    assert marker is None
    assert full[0]["Type"] == "EXECUTION"

    # The next checkpoint: one step more, and a callback the run began earlier answered meanwhile (another write).
    made = checkpointed(made, [update("cb", "CALLBACK", "START")])
    seen = aws_ops.revision(made)
    answered = orjson_copy(made)
    answered["ops"][-1].update(status="SUCCEEDED", result='"yes"', ended=NOW)
    aws_ops.stamp_changes(made, answered)
    made = checkpointed(answered, [update("s300", "STEP", "SUCCEED", Payload="300")])
    delta, marker = aws_ops.state_page(made, None, 1000, since=seen)
    assert ids(delta) == ["cb", "s300"]  # not the 300 before, and no EXECUTION operation
    assert delta[0]["CallbackDetails"]["Result"] == '"yes"'
    assert marker is None
    # Nothing changed since the newest revision: an empty answer.
    assert aws_ops.state_page(made, None, 1000, since=aws_ops.revision(made)) == ([], None)
    # A write that changes nothing stamps nothing.
    same = orjson_copy(made)
    aws_ops.stamp_changes(made, same)
    assert aws_ops.revision(same) == aws_ops.revision(made)


def test_pages_of_changes_and_of_the_whole_state_go_on_where_they_ended_whatever_changes_meanwhile() -> None:
    made = record([update(f"s{n}", "STEP", "START") for n in range(10)])
    seen = aws_ops.revision(made)
    made = checkpointed(made, [update(f"s{n}", "STEP", "SUCCEED", Payload="1") for n in (1, 3, 4, 6, 8, 9)])
    first, marker = aws_ops.state_page(made, None, 4, since=seen)
    assert ids(first) == ["s1", "s3", "s4", "s6"]
    assert marker == f"since.{seen}.6"
    # s0 and s7 change before the next page is read: s7 comes in this one, s0 in the next checkpoint's changes.
    later = checkpointed(made, [update("s0", "STEP", "SUCCEED", Payload="2"), update("s7", "STEP", "SUCCEED")])
    rest, marker = aws_ops.state_page(later, marker, 4)
    assert (ids(rest), marker) == (["s7", "s8", "s9"], None)

    whole, marker = aws_ops.state_page(later, None, 4)
    assert ids(whole) == ["exec-1", "s0", "s1", "s2"]
    assert marker == "all.2"
    whole, marker = aws_ops.state_page(later, marker, 100)
    assert ids(whole) == [f"s{n}" for n in range(3, 10)]
    assert marker is None


def orjson_copy(value: dict[str, Any]) -> dict[str, Any]:
    import orjson

    copied: dict[str, Any] = orjson.loads(orjson.dumps(value))
    return copied
