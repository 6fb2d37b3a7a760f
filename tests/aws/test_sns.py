"""SNS in its query protocol through `/-/aws` with boto3: topics, publishing, subscriptions with filter policies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import blocking, client
from tests.server.conftest import Served


async def _received(served: Served, queue: str, count: int = 1) -> list[Any]:
    queues = served.platform.store.queues
    found: list[Any] = []
    while len(found) < count:
        batch = await queues.receive(queue, max_messages=10, wait=20)
        assert batch, f"nothing arrived on {queue!r} within 20 s"
        for message in batch:
            found.append(json.loads(message.body))
            await queues.ack(queue, message.receipt)
    return found


async def test_publish_reaches_the_apps_topic_function(shop: Served) -> None:
    sns = client(shop.url, "sns")
    topics = [t["TopicArn"] for t in (await blocking(sns.list_topics))["Topics"]]
    assert "arn:aws:sns:local:000000000000:shipments" in topics
    sent = await blocking(
        sns.publish,
        TopicArn="arn:aws:sns:local:000000000000:shipments",
        Message="parcel 9",
        Subject="Shipped",
        MessageAttributes={"carrier": {"DataType": "String", "StringValue": "post"}},
    )
    [record] = await _received(shop, "shipments-seen")
    assert record["MessageId"] == sent["MessageId"]
    assert (record["Message"], record["Subject"]) == ("parcel 9", "Shipped")
    assert record["MessageAttributes"]["carrier"] == {"Type": "String", "Value": "post"}


async def test_a_topic_made_with_boto3_fans_out_to_queues_by_filter_policy(shop: Served) -> None:
    sns = client(shop.url, "sns")
    arn = (await blocking(sns.create_topic, Name="alerts"))["TopicArn"]
    assert arn == "arn:aws:sns:local:000000000000:alerts"
    loud = await blocking(
        sns.subscribe,
        TopicArn=arn,
        Protocol="sqs",
        Endpoint="arn:aws:sqs:local:000000000000:loud",
        Attributes={"FilterPolicy": json.dumps({"level": ["error"]}), "RawMessageDelivery": "true"},
        ReturnSubscriptionArn=True,
    )
    await blocking(sns.subscribe, TopicArn=arn, Protocol="sqs", Endpoint="arn:aws:sqs:local:000000000000:everything")
    listed = (await blocking(sns.list_subscriptions_by_topic, TopicArn=arn))["Subscriptions"]
    assert sorted(s["Endpoint"] for s in listed) == [
        "arn:aws:sqs:local:000000000000:everything",
        "arn:aws:sqs:local:000000000000:loud",
    ]
    level = {"level": {"DataType": "String", "StringValue": "error"}}
    await blocking(sns.publish, TopicArn=arn, Message="disk full", MessageAttributes=level)
    await blocking(sns.publish, TopicArn=arn, Message="all well")
    # Raw delivery: the message itself; without: SNS's notification JSON.
    queues = shop.platform.store.queues
    (loud_message,) = await queues.receive("loud", wait=20)
    assert loud_message.body == b"disk full"
    everything = await _received(shop, "everything", 2)
    assert sorted(n["Message"] for n in everything) == ["all well", "disk full"]
    assert everything[0]["TopicArn"] == arn

    await blocking(sns.unsubscribe, SubscriptionArn=loud["SubscriptionArn"])
    listed = (await blocking(sns.list_subscriptions_by_topic, TopicArn=arn))["Subscriptions"]
    assert [s["Endpoint"].rsplit(":", 1)[1] for s in listed] == ["everything"]

    await blocking(sns.delete_topic, TopicArn=arn)
    assert arn not in [t["TopicArn"] for t in (await blocking(sns.list_topics))["Topics"]]
    with pytest.raises(sns.exceptions.NotFoundException):
        await blocking(sns.publish, TopicArn=arn, Message="gone")
    assert await shop.platform.topics.subscriptions("alerts") == []


async def test_message_structure_json_takes_the_default(shop: Served) -> None:
    sns = client(shop.url, "sns")
    await blocking(
        sns.publish,
        TopicArn="arn:aws:sns:local:000000000000:shipments",
        Message=json.dumps({"default": "plain", "sqs": "for queues"}),
        MessageStructure="json",
    )
    [record] = await _received(shop, "shipments-seen")
    assert record["Message"] == "plain"


@pytest.mark.parametrize(
    ("call", "code", "status"),
    [
        (lambda s: s.publish(TopicArn="arn:aws:sns:local:000000000000:nowhere", Message="x"), "NotFound", 404),
        (lambda s: s.publish(TopicArn="arn:aws:sns:local:000000000000:shipments", Message="x", Subject="s" * 100),
         "InvalidParameter", 400),
        (lambda s: s.publish(TopicArn="arn:aws:sns:local:000000000000:shipments", Message="{}",
                             MessageStructure="json"), "InvalidParameter", 400),
        (lambda s: s.subscribe(TopicArn="arn:aws:sns:local:000000000000:shipments", Protocol="sms",
                               Endpoint="+1555"), "InvalidParameter", 400),
        (lambda s: s.subscribe(TopicArn="arn:aws:sns:local:000000000000:shipments", Protocol="lambda",
                               Endpoint="arn:aws:lambda:local:000000000000:function:shop-nothing"),
         "InvalidParameter", 400),
        (lambda s: s.list_phone_numbers_opted_out(), "InvalidAction", 400),
    ],
)  # fmt: skip
async def test_bad_input_gets_sns_error_codes(shop: Served, call: Any, code: str, status: int) -> None:
    sns = client(shop.url, "sns")
    with pytest.raises(ClientError) as caught:
        await blocking(call, sns)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


async def test_publish_batch_answers_each_entry(shop: Served) -> None:
    sns = client(shop.url, "sns")
    answer = await blocking(
        sns.publish_batch,
        TopicArn="arn:aws:sns:local:000000000000:shipments",
        PublishBatchRequestEntries=[
            {"Id": "a", "Message": "first", "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "1"}}},
            {"Id": "b", "Message": "second", "Subject": "s" * 100},
            {"Id": "c", "Message": "third"},
        ],
    )
    assert sorted(s["Id"] for s in answer["Successful"]) == ["a", "c"]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in answer["Failed"]] == [("b", "InvalidParameter", True)]
    records = await _received(shop, "shipments-seen", 2)
    assert sorted(r["Message"] for r in records) == ["first", "third"]
    with pytest.raises(ClientError) as caught:
        await blocking(
            sns.publish_batch,
            TopicArn="arn:aws:sns:local:000000000000:shipments",
            PublishBatchRequestEntries=[{"Id": "x", "Message": "1"}, {"Id": "x", "Message": "2"}],
        )
    assert caught.value.response["Error"]["Code"] == "BatchEntryIdsNotDistinct"
