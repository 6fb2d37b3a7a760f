"""EventBridge through `/-/aws` with boto3: PutEvents with per-entry results, rules and targets over the app's bus."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import blocking, client
from tests.server.conftest import Served


async def _received(served: Served, queue: str, count: int = 1) -> list[dict[str, Any]]:
    queues = served.platform.store.queues
    found: list[dict[str, Any]] = []
    while len(found) < count:
        batch = await queues.receive(queue, max_messages=10, wait=20)
        assert batch, f"nothing arrived on {queue!r} within 20 s"
        for message in batch:
            found.append(json.loads(message.body))
            await queues.ack(queue, message.receipt)
    return found


def _entry(source: str, detail: str = '{"n": 1}', **more: Any) -> dict[str, Any]:
    return {"Source": source, "DetailType": "Order Placed", "Detail": detail, **more}


async def test_put_events_answers_each_entry_and_publishes_the_good_ones(shop: Served) -> None:
    events = client(shop.url, "events")
    answer = await blocking(
        events.put_events,
        Entries=[_entry("shop", '{"order": 7}'), _entry("shop", "not json"), _entry("shop", "[1]")],
    )
    assert answer["FailedEntryCount"] == 2
    first, second, third = answer["Entries"]
    assert set(first) == {"EventId"}
    assert second["ErrorCode"] == "MalformedDetail"
    assert "Entries[1].Detail" in second["ErrorMessage"]
    assert third["ErrorCode"] == "MalformedDetail"
    # The app's @app.on_event({"source": ["shop"]}) saw the accepted one (as a CloudEvent, its default shape).
    [seen] = await _received(shop, "events-seen")
    assert seen["id"] == first["EventId"]
    assert (seen["data"], seen["type"]) == ({"order": 7}, "Order Placed")


async def test_too_many_entries_is_a_validation_error(shop: Served) -> None:
    events = client(shop.url, "events")
    with pytest.raises(ClientError) as caught:
        await blocking(events.put_events, Entries=[_entry("shop")] * 11)
    assert caught.value.response["Error"]["Code"] == "ValidationException"


async def test_a_rule_made_with_boto3_routes_to_its_targets(shop: Served) -> None:
    events = client(shop.url, "events")
    pattern = json.dumps({"source": ["billing"]})
    arn = (await blocking(events.put_rule, Name="bills", EventPattern=pattern, Description="copies"))["RuleArn"]
    assert arn == "arn:aws:events:local:000000000000:rule/bills"
    described = await blocking(events.describe_rule, Name="bills")
    assert (described["State"], json.loads(described["EventPattern"]), described["Description"]) == (
        "ENABLED", {"source": ["billing"]}, "copies"
    )  # fmt: skip

    added = await blocking(
        events.put_targets,
        Rule="bills",
        Targets=[
            {"Id": "copy", "Arn": "arn:aws:sqs:local:000000000000:bill-copies"},
            {"Id": "fn", "Arn": "arn:aws:lambda:local:000000000000:function:shop-on_shop_event"},
            {"Id": "bucket", "Arn": "arn:aws:s3:::somewhere"},
        ],
    )
    assert added["FailedEntryCount"] == 1
    assert added["FailedEntries"][0]["TargetId"] == "bucket"
    listed = (await blocking(events.list_targets_by_rule, Rule="bills"))["Targets"]
    assert sorted(t["Id"] for t in listed) == ["copy", "fn"]

    await blocking(events.put_events, Entries=[_entry("billing", '{"bill": 1}')])
    [copy] = await _received(shop, "bill-copies")
    assert (copy["source"], copy["detail"], copy["detail-type"]) == ("billing", {"bill": 1}, "Order Placed")
    [seen] = await _received(shop, "events-seen")
    assert seen["detail"] == {"bill": 1}  # an EventBridge target gets the EventBridge envelope
    # AWS's keys and no others (the trace travels with the invocation).
    assert set(seen) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}

    # Disabled, the rule routes nothing; enabled again, it does.
    await blocking(events.disable_rule, Name="bills")
    await blocking(events.put_events, Entries=[_entry("billing", '{"bill": 2}')])
    await blocking(events.enable_rule, Name="bills")
    await blocking(events.put_events, Entries=[_entry("billing", '{"bill": 3}')])
    [copy] = await _received(shop, "bill-copies")
    assert copy["detail"] == {"bill": 3}

    with pytest.raises(ClientError) as caught:
        await blocking(events.delete_rule, Name="bills")
    assert "has targets" in caught.value.response["Error"]["Message"]
    await blocking(events.remove_targets, Rule="bills", Ids=["copy", "fn"])
    await blocking(events.delete_rule, Name="bills")
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        await blocking(events.describe_rule, Name="bills")


async def test_the_apps_own_rules_are_listed_and_not_changed(shop: Served) -> None:
    events = client(shop.url, "events")
    rules = {r["Name"]: r for r in (await blocking(events.list_rules))["Rules"]}
    assert rules["on_shop_event"]["ManagedBy"] == "triggerfish-app"
    assert json.loads(rules["on_shop_event"]["EventPattern"]) == {"source": ["shop"]}
    with pytest.raises(ClientError) as caught:
        await blocking(events.put_rule, Name="on_shop_event", EventPattern='{"source": ["x"]}')
    assert caught.value.response["Error"]["Code"] == "ManagedRuleException"
    targets = (await blocking(events.list_targets_by_rule, Rule="on_shop_event"))["Targets"]
    assert targets == [{"Id": "on_shop_event", "Arn": "arn:aws:lambda:local:000000000000:function:shop-on_shop_event"}]


async def test_patterns_are_checked_as_eventbridge_checks_them(shop: Served) -> None:
    events = client(shop.url, "events")
    with pytest.raises(ClientError) as caught:
        await blocking(events.put_rule, Name="bad", EventPattern='{"source": "shop"}')
    assert caught.value.response["Error"]["Code"] == "InvalidEventPatternException"
    event = {
        "id": "1", "account": "000000000000", "source": "shop", "time": "2026-01-01T00:00:00Z",
        "region": "local", "detail-type": "x", "detail": {"n": 5}, "resources": [],
    }  # fmt: skip
    matched = await blocking(
        events.test_event_pattern, EventPattern='{"detail": {"n": [{"numeric": [">", 3]}]}}', Event=json.dumps(event)
    )
    assert matched["Result"] is True
    buses = (await blocking(events.list_event_buses))["EventBuses"]
    assert {"Name": "default", "Arn": "arn:aws:events:local:000000000000:event-bus/default"} in buses


async def test_targets_take_input_input_path_and_transformers(shop: Served) -> None:
    events = client(shop.url, "events")
    await blocking(events.put_rule, Name="shaped", EventPattern='{"source": ["shapes"]}')
    queue = "arn:aws:sqs:local:000000000000:"
    await blocking(
        events.put_targets,
        Rule="shaped",
        Targets=[
            {"Id": "constant", "Arn": queue + "constant", "Input": '{"fixed": true}'},
            {"Id": "detail", "Arn": queue + "detail-only", "InputPath": "$.detail"},
            {
                "Id": "shaped",
                "Arn": queue + "shaped",
                "InputTransformer": {"InputPathsMap": {"n": "$.detail.n"}, "InputTemplate": '{"count": <n>}'},
            },
        ],
    )
    await blocking(events.put_events, Entries=[_entry("shapes", '{"n": 4}')])
    assert await _received(shop, "constant") == [{"fixed": True}]
    assert await _received(shop, "detail-only") == [{"n": 4}]
    assert await _received(shop, "shaped") == [{"count": 4}]


async def test_the_query_protocol_is_answered_in_xml(shop: Served) -> None:
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url=f"{shop.url}/-/aws/",
        data="Action=ListQueues&Version=2012-11-05",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    SigV4Auth(Credentials("test", "test"), "sqs", "local").add_auth(request)
    async with httpx.AsyncClient() as http:
        answer = await http.post(request.url, content=request.body, headers=dict(request.headers))
    # SQS answers its older query protocol too (tests/aws/test_sqs_query.py), in XML.
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/xml"
    assert "<ListQueuesResponse" in answer.text


async def test_a_replay_delivers_past_events_again_to_a_rule(shop: Served) -> None:
    events = client(shop.url, "events")
    await blocking(events.put_rule, Name="audit", EventPattern='{"source": ["ledger"]}')
    target = {"Id": "copy", "Arn": "arn:aws:sqs:local:000000000000:ledger-copies"}
    await blocking(events.put_targets, Rule="audit", Targets=[target])
    began = time.time() - 1
    await blocking(events.put_events, Entries=[_entry("ledger", '{"entry": 1}')])
    [live] = await _received(shop, "ledger-copies")
    ended = time.time() + 1
    started = await blocking(
        events.start_replay,
        ReplayName="again",
        EventSourceArn="arn:aws:events:local:000000000000:archive/default",
        EventStartTime=began,
        EventEndTime=ended,
        Destination={
            "Arn": "arn:aws:events:local:000000000000:event-bus/default",
            "FilterArns": ["arn:aws:events:local:000000000000:rule/audit"],
        },
    )
    assert started["State"] == "COMPLETED"
    [replayed] = await _received(shop, "ledger-copies")
    assert (replayed["id"], replayed["detail"]) == (live["id"], {"entry": 1})
    assert replayed["replay-name"] == "again"
    assert "replay-name" not in live
    described = await blocking(events.describe_replay, ReplayName="again")
    assert (described["State"], described["ReplayArn"]) == ("COMPLETED", started["ReplayArn"])
    with pytest.raises(ClientError) as caught:
        await blocking(
            events.start_replay,
            ReplayName="again",
            EventSourceArn="arn:aws:events:local:000000000000:archive/default",
            EventStartTime=began,
            EventEndTime=ended,
            Destination={"Arn": "arn:aws:events:local:000000000000:event-bus/default"},
        )
    assert caught.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
