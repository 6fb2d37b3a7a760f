"""Real handlers written with AWS's durable execution SDK (`@durable_execution`, unchanged) on a real platform:
invoked through boto3 like Lambda, checkpointing through boto3 to the platform's `/-/aws`, resumed by the
platform when a wait, a retry, a callback or a chained invoke is due; operated with boto3 as an operator would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import blocking, client
from tests.durable.conftest import serve_durable, until
from tests.server.conftest import Served
from triggerfish.observe.spans import ids_of
from triggerfish.observe.traces import trace_spans

FLOWS = Path(__file__).with_name("flows.py")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def durable(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve_durable(tmp_path, FLOWS):
        yield served


def runs(work: Path) -> list[str]:
    log = work / "runs.log"
    return log.read_text().split() if log.exists() else []


async def start(served: Served, function: str, event: dict[str, Any]) -> str:
    """Invoke `function` asynchronously with boto3 (Lambda's Event invocation); the durable execution's ARN."""
    lam = client(served.url, "lambda")
    await blocking(lam.invoke, FunctionName=f"durable-{function}", InvocationType="Event", Payload=json.dumps(event))

    async def listed() -> Any:
        found = await blocking(lam.list_durable_executions_by_function, FunctionName=f"durable-{function}")
        return found["DurableExecutions"]

    executions = await until(listed)
    return str(executions[0]["DurableExecutionArn"])


async def finished(served: Served, arn: str) -> dict[str, Any]:
    lam = client(served.url, "lambda")

    async def done() -> Any:
        found = await blocking(lam.get_durable_execution, DurableExecutionArn=arn)
        return found if found["Status"] != "RUNNING" else None

    result: dict[str, Any] = await until(done)
    return result


async def test_steps_and_a_wait_run_once_each_and_the_result_is_the_handlers(durable: Served, tmp_path: Path) -> None:
    lam = client(durable.url, "lambda")
    answer = await blocking(
        lam.invoke, FunctionName="durable-steps", Payload=json.dumps({"n": 1, "dir": str(tmp_path)})
    )
    # The first run ends at the wait: the invocation answers the execution's summary, RUNNING.
    assert json.loads(answer["Payload"].read())["status"] == "RUNNING"
    [execution] = (await blocking(lam.list_durable_executions_by_function, FunctionName="durable-steps"))[
        "DurableExecutions"
    ]
    done = await finished(durable, execution["DurableExecutionArn"])
    assert done["Status"] == "SUCCEEDED"
    assert json.loads(done["Result"]) == {"first": 2, "second": 20}
    assert json.loads(done["InputPayload"])["n"] == 1
    # Replayed after the wait, the first step returned its checkpointed result: each step ran once.
    assert runs(tmp_path) == ["add", "times"]
    history = await blocking(lam.get_durable_execution_history, DurableExecutionArn=done["DurableExecutionArn"])
    kinds = [event["EventType"] for event in history["Events"]]
    assert kinds == [
        "ExecutionStarted",
        "StepStarted",
        "StepSucceeded",
        "WaitStarted",
        "WaitSucceeded",
        "StepStarted",
        "StepSucceeded",
        "ExecutionSucceeded",
    ]
    # The same execution is a workflow record of the one engine: the native control API sees it.
    record = await durable.platform.workflows.describe(done["DurableExecutionName"])
    assert [(op["name"], op["status"]) for op in record["ops"]] == [
        ("add", "SUCCEEDED"),
        ("pause", "SUCCEEDED"),
        ("times", "SUCCEEDED"),
    ]
    # Its runs and their operations are one trace: each operation a span under the run that carried it out.
    trace_id, _ = ids_of(record["trace"])

    async def both_runs_traced() -> Any:
        spans = await trace_spans(durable.platform.store, trace_id)
        # The first run, and the one the wait's end resumed (its invocation record lands as it ends).
        return spans if len([span for span in spans if span.name == "steps"]) == 2 else None

    spans = await until(both_runs_traced)
    by_name = {span.name: span for span in spans}
    assert {"step add", "sleep pause", "step times"} <= set(by_name)
    run_spans = {span.span_id for span in spans if span.name == "steps"}
    assert by_name["step add"].parent_span_id in run_spans
    assert by_name["step times"].parent_span_id in run_spans
    assert by_name["step add"].parent_span_id != by_name["step times"].parent_span_id
    assert by_name["sleep pause"].end - by_name["sleep pause"].start >= 1.0


async def test_a_failed_step_is_retried_after_its_backoff(durable: Served, tmp_path: Path) -> None:
    arn = await start(durable, "flaky", {"dir": str(tmp_path)})
    done = await finished(durable, arn)
    assert done["Status"] == "SUCCEEDED", done
    assert json.loads(done["Result"]) == "charged"
    assert runs(tmp_path) == ["attempt-1", "attempt-2"]


async def test_callbacks_are_answered_by_an_operator_with_boto3(durable: Served, tmp_path: Path) -> None:
    lam = client(durable.url, "lambda")
    arn = await start(durable, "approval", {"dir": str(tmp_path)})

    async def callback_started(count: int) -> Any:
        history = await blocking(lam.get_durable_execution_history, DurableExecutionArn=arn)
        ids = [
            e["CallbackStartedDetails"]["CallbackId"] for e in history["Events"] if e["EventType"] == "CallbackStarted"
        ]
        return ids if len(ids) >= count else None

    [first] = await until(lambda: callback_started(1))
    await blocking(lam.send_durable_execution_callback_heartbeat, CallbackId=first)
    await blocking(lam.send_durable_execution_callback_success, CallbackId=first, Result=json.dumps({"by": "ada"}))
    second = (await until(lambda: callback_started(2)))[1]
    assert runs(tmp_path) == ["submitted"] or await until(lambda: _ran(tmp_path, "submitted"))
    await blocking(
        lam.send_durable_execution_callback_failure,
        CallbackId=second,
        Error={"ErrorType": "Refused", "ErrorMessage": "not countersigned"},
    )
    done = await finished(durable, arn)
    assert done["Status"] == "FAILED"
    assert "not countersigned" in json.dumps(done["Error"])
    # An unknown callback is not found; an answered one cannot be answered again.
    with pytest.raises(ClientError) as unknown:
        await blocking(lam.send_durable_execution_callback_heartbeat, CallbackId=first[:-4] + "AAAA")
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as refused:
        await blocking(lam.send_durable_execution_callback_success, CallbackId=first, Result=b"{}")
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"


async def _ran(work: Path, name: str) -> bool:
    return name in runs(work)


async def test_wait_for_condition_polls_until_the_strategy_stops(durable: Served, tmp_path: Path) -> None:
    arn = await start(durable, "polling", {"dir": str(tmp_path)})
    done = await finished(durable, arn)
    assert done["Status"] == "SUCCEEDED", done
    assert json.loads(done["Result"]) == 3
    assert runs(tmp_path) == ["poll-0", "poll-1", "poll-2"]


async def test_invoke_map_parallel_and_child_contexts(durable: Served, tmp_path: Path) -> None:
    arn = await start(durable, "fan_out", {"dir": str(tmp_path)})
    done = await finished(durable, arn)
    assert done["Status"] == "SUCCEEDED", done
    assert json.loads(done["Result"]) == {
        "invoked": {"doubled": 42},
        "mapped": [1, 4, 9],
        "branches": ["a", "b"],
        "child": "inside",
    }


async def test_an_operator_stops_an_execution_and_its_run_cannot_checkpoint_after(
    durable: Served, tmp_path: Path
) -> None:
    lam = client(durable.url, "lambda")
    arn = await start(durable, "approval", {"dir": str(tmp_path)})
    await blocking(lam.stop_durable_execution, DurableExecutionArn=arn, Error={"ErrorMessage": "order withdrawn"})
    stopped = await blocking(lam.get_durable_execution, DurableExecutionArn=arn)
    assert stopped["Status"] == "STOPPED"
    listed = await blocking(
        lam.list_durable_executions_by_function, FunctionName="durable-approval", Statuses=["STOPPED"]
    )
    assert [e["DurableExecutionArn"] for e in listed["DurableExecutions"]] == [arn]
    with pytest.raises(ClientError) as unknown:
        await blocking(lam.get_durable_execution, DurableExecutionArn=arn.rsplit("/", 1)[0] + "/nope")
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"


async def test_a_callback_without_heartbeats_times_out_and_a_heartbeat_puts_its_end_off(
    durable: Served, tmp_path: Path
) -> None:
    lam = client(durable.url, "lambda")
    arn = await start(durable, "unanswered", {})
    execution_id = arn.rsplit("/", 1)[1]

    async def waiting() -> Any:
        ops = (await durable.platform.workflows.describe(execution_id))["ops"]
        return ops[0] if ops and ops[0]["status"] == "WAITING" else None

    callback = await until(waiting)
    late: dict[str, Any] = {}
    try:
        await blocking(lam.send_durable_execution_callback_heartbeat, CallbackId=callback["token"])
    except ClientError as refused:  # on a loaded machine the second may pass first: the callback has timed out
        late = refused.response["Error"]
    if late:
        assert (late["Code"], "TIMED_OUT" in late["Message"]) == ("InvalidParameterValueException", True)
    else:
        after = (await durable.platform.workflows.describe(execution_id))["ops"][0]
        assert after["status"] != "WAITING" or after["due"] > callback["due"]  # the timeout moved on
    done = await finished(durable, arn)
    assert done["Status"] == "FAILED"
    assert (await durable.platform.workflows.describe(execution_id))["ops"][0]["status"] == "TIMED_OUT"
    assert "timed out" in json.dumps(done["Error"]).lower()


async def test_an_http_route_and_an_event_rule_run_durable_handlers(durable: Served) -> None:
    async with httpx.AsyncClient(base_url=durable.url) as http:
        answer = await http.post("/quotes", json={"items": 3})
    assert answer.status_code == 201
    assert answer.json() == {"price": 15}
    events = client(durable.url, "events")
    entry = {"Source": "shop", "DetailType": "order placed", "Detail": json.dumps({"id": "o-7"})}
    await blocking(events.put_events, Entries=[entry])
    lam = client(durable.url, "lambda")

    async def seen() -> Any:
        listed = await blocking(lam.list_durable_executions_by_function, FunctionName="durable-on_order")
        return [e for e in listed["DurableExecutions"] if e["Status"] == "SUCCEEDED"]

    [execution] = await until(seen)
    done = await blocking(lam.get_durable_execution, DurableExecutionArn=execution["DurableExecutionArn"])
    assert json.loads(done["Result"]) == "seen o-7"
    assert json.loads(done["InputPayload"])["type"] == "order placed"


@pytest.mark.timeout(180)  # 300 steps, each a checkpoint over HTTP: about 40 s on a loaded 2-core machine
async def test_a_long_execution_gets_small_checkpoint_answers_and_pages_its_state(
    durable: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hundreds of operations: each checkpoint answers what changed since the caller's token (as Lambda's
    CheckpointDurableExecution does), not the whole execution, and state comes in pages the SDK follows."""
    from triggerfish.workflows import aws_ops

    monkeypatch.setattr(aws_ops, "PAGE", 40)  # pages of 40 operations, so a run of 300 is paged
    service = durable.platform.workflows.durable
    checkpoint, state = service.checkpoint, service.state
    answers: list[tuple[int, dict[str, Any]]] = []
    markers: list[str | None] = []

    async def recorded_checkpoint(arn: str, token: str, updates: Any) -> dict[str, Any]:
        answer = await checkpoint(arn, token, updates)
        answers.append((len(updates), answer))
        return answer

    async def recorded_state(arn: str, token: str, marker: str | None, max_items: int) -> dict[str, Any]:
        markers.append(marker)
        return await state(arn, token, marker, max_items)

    monkeypatch.setattr(service, "checkpoint", recorded_checkpoint)
    monkeypatch.setattr(service, "state", recorded_state)
    steps = 300
    arn = await start(durable, "long", {"dir": str(tmp_path), "steps": steps})
    done = await finished(durable, arn)
    assert done["Status"] == "SUCCEEDED", done
    assert json.loads(done["Result"]) == {"total": sum(range(steps)), "squares": sum(n * n for n in range(12))}
    assert runs(tmp_path) == [f"s{n}" for n in range(steps)]  # each step once, across the two runs

    record = await durable.platform.workflows.describe(done["DurableExecutionName"])
    assert len(record["ops"]) > steps + 12
    sizes = [len(answer["NewExecutionState"]["Operations"]) for _, answer in answers]
    assert len(answers) >= steps
    # An answer carries the operations its checkpoint changed (and any changed meanwhile), never the whole state.
    assert max(sizes) <= aws_ops.PAGE
    assert sorted(sizes)[len(sizes) // 2] <= 2
    assert all(
        size <= updates + 1 for updates, size in ((u, len(a["NewExecutionState"]["Operations"])) for u, a in answers)
    )
    biggest = max(len(json.dumps(answer)) for _, answer in answers)
    assert biggest < 40_000, biggest
    # The run after the wait began with the first page of 300-odd operations and read the rest page by page.
    assert [m for m in markers if m and m.startswith("all.")], markers
