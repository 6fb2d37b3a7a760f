"""SQS through `/-/aws` with boto3, over a real platform on a socket: the platform's own queues."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import blocking, client
from tests.server.conftest import Served
from triggerfish.aws.sqs_messages import TypedAttribute, md5_of_attributes


async def _taken(served: Served, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 20.0
    while len(found) < count and asyncio.get_running_loop().time() < deadline:
        for message in await served.platform.store.queues.receive("taken", max_messages=10, wait=0.5):
            found.append(json.loads(message.body))
            await served.platform.store.queues.ack("taken", message.receipt)
    return found


async def test_a_boto3_send_message_triggers_the_queue_function(shop: Served) -> None:
    sqs = client(shop.url, "sqs")
    url = (await blocking(sqs.get_queue_url, QueueName="orders"))["QueueUrl"]
    assert url == f"{shop.url}/-/aws/000000000000/orders"
    sent = await blocking(
        sqs.send_message,
        QueueUrl=url,
        MessageBody="two lamps",
        MessageAttributes={
            "tier": {"DataType": "String", "StringValue": "gold"},
            "count": {"DataType": "Number", "StringValue": "2"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    assert sent["MD5OfMessageBody"] == "0fb98de4c5f0e6c3ac4b34c1e5b20b36" or len(sent["MD5OfMessageBody"]) == 32
    [taken] = await _taken(shop, 1)
    assert taken["body"] == "two lamps"
    assert taken["attributes"]["count"]["dataType"] == "Number"
    assert taken["attributes"]["blob"] == {
        "binaryValue": "AAE=",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "Binary",
    }
    # The record's digest is the one SQS computed on send: the same attributes, the same MD5.
    assert taken["md5"] == sent["MD5OfMessageAttributes"]


async def test_message_digests_are_sqs_own() -> None:
    # AWS's worked example for MD5OfMessageAttributes (one String attribute).
    attributes = {"name": TypedAttribute("String", "value")}
    import hashlib
    import struct

    expected = hashlib.md5(
        struct.pack(">I", 4) + b"name" + struct.pack(">I", 6) + b"String" + b"\x01" + struct.pack(">I", 5) + b"value",
        usedforsecurity=False,
    ).hexdigest()
    assert md5_of_attributes(attributes) == expected


async def test_the_queue_lifecycle(shop: Served) -> None:
    sqs = client(shop.url, "sqs")
    url = (await blocking(sqs.create_queue, QueueName="jobs", Attributes={"VisibilityTimeout": "5"}))["QueueUrl"]
    # Created again with the same attributes: the same queue; with others: refused as SQS does.
    assert (await blocking(sqs.create_queue, QueueName="jobs"))["QueueUrl"] == url
    with pytest.raises(ClientError) as caught:
        await blocking(sqs.create_queue, QueueName="jobs", Attributes={"VisibilityTimeout": "9"})
    assert caught.value.response["Error"]["Code"] == "QueueAlreadyExists"
    listed = (await blocking(sqs.list_queues))["QueueUrls"]
    assert {u.rsplit("/", 1)[1] for u in listed} >= {"jobs", "orders"}
    assert not any("/fn." in u for u in listed)  # the platform's own queues are not the app's
    assert (await blocking(sqs.list_queues, QueueNamePrefix="jo"))["QueueUrls"] == [url]

    await blocking(
        sqs.set_queue_attributes, QueueUrl=url, Attributes={"DelaySeconds": "0", "MessageRetentionPeriod": "600"}
    )
    attributes = (await blocking(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["All"]))["Attributes"]
    assert attributes["VisibilityTimeout"] == "5"
    assert attributes["MessageRetentionPeriod"] == "600"
    assert attributes["QueueArn"] == "arn:aws:sqs:local:000000000000:jobs"

    await blocking(sqs.send_message, QueueUrl=url, MessageBody="a")
    attributes = await blocking(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"] == {"ApproximateNumberOfMessages": "1"}
    await blocking(sqs.purge_queue, QueueUrl=url)
    assert (await blocking(sqs.receive_message, QueueUrl=url)).get("Messages") is None

    await blocking(sqs.delete_queue, QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        await blocking(sqs.get_queue_url, QueueName="jobs")
    with pytest.raises(ClientError) as caught:
        await blocking(sqs.send_message, QueueUrl=url, MessageBody="gone")
    assert caught.value.response["Error"]["Code"] in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


async def test_receive_delete_and_visibility(shop: Served) -> None:
    sqs = client(shop.url, "sqs")
    url = (await blocking(sqs.create_queue, QueueName="work"))["QueueUrl"]
    batch = await blocking(
        sqs.send_message_batch,
        QueueUrl=url,
        Entries=[
            {"Id": "a", "MessageBody": "one", "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}},
            {"Id": "b", "MessageBody": "two"},
            {"Id": "c", "MessageBody": "three", "MessageGroupId": "g"},  # not a FIFO queue: this entry fails alone
        ],
    )
    assert sorted(s["Id"] for s in batch["Successful"]) == ["a", "b"]
    assert batch["Failed"][0]["Id"] == "c"
    assert batch["Failed"][0]["SenderFault"] is True

    received = await blocking(
        sqs.receive_message,
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=30,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
    )
    messages = received["Messages"]
    assert [m["Body"] for m in messages] == ["one", "two"]
    assert messages[0]["MessageAttributes"] == {"k": {"StringValue": "v", "DataType": "String"}}
    assert set(messages[0]["Attributes"]) == {"ApproximateReceiveCount", "SentTimestamp"}
    assert messages[0]["Attributes"]["ApproximateReceiveCount"] == "1"
    # Leased: nothing more to receive, until one is made visible again.
    assert (await blocking(sqs.receive_message, QueueUrl=url)).get("Messages") is None
    await blocking(
        sqs.change_message_visibility, QueueUrl=url, ReceiptHandle=messages[1]["ReceiptHandle"], VisibilityTimeout=0
    )
    again = (await blocking(sqs.receive_message, QueueUrl=url))["Messages"]
    assert [m["Body"] for m in again] == ["two"]
    assert again[0]["MessageId"] == messages[1]["MessageId"]

    changed = await blocking(
        sqs.change_message_visibility_batch,
        QueueUrl=url,
        Entries=[
            {"Id": "kept", "ReceiptHandle": again[0]["ReceiptHandle"], "VisibilityTimeout": 60},
            {"Id": "stale", "ReceiptHandle": messages[1]["ReceiptHandle"], "VisibilityTimeout": 60},
        ],
    )
    assert [s["Id"] for s in changed["Successful"]] == ["kept"]
    assert [(f["Id"], f["Code"]) for f in changed["Failed"]] == [("stale", "MessageNotInflight")]
    deleted = await blocking(
        sqs.delete_message_batch,
        QueueUrl=url,
        Entries=[
            {"Id": "x", "ReceiptHandle": messages[0]["ReceiptHandle"]},
            {"Id": "y", "ReceiptHandle": again[0]["ReceiptHandle"]},
        ],
    )
    assert sorted(s["Id"] for s in deleted["Successful"]) == ["x", "y"]
    stats = await shop.platform.store.queues.stats("work")
    assert stats.depth == 0


async def test_long_polling_returns_when_a_message_arrives(shop: Served) -> None:
    sqs = client(shop.url, "sqs")
    url = (await blocking(sqs.create_queue, QueueName="slow"))["QueueUrl"]
    waiting = asyncio.ensure_future(blocking(sqs.receive_message, QueueUrl=url, WaitTimeSeconds=10))
    await asyncio.sleep(0)  # let the receive start before the send
    await shop.platform.store.queues.send("slow", b"late")
    received = await asyncio.wait_for(waiting, timeout=10)
    assert [m["Body"] for m in received["Messages"]] == ["late"]


async def test_fifo_queues_need_groups_and_dedupe(shop: Served) -> None:
    sqs = client(shop.url, "sqs")
    with pytest.raises(ClientError) as caught:
        await blocking(sqs.create_queue, QueueName="ordered", Attributes={"FifoQueue": "true"})
    assert "can only end with .fifo" in caught.value.response["Error"]["Message"]
    url = (
        await blocking(
            sqs.create_queue,
            QueueName="ordered.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        )
    )["QueueUrl"]
    with pytest.raises(ClientError) as caught:
        await blocking(sqs.send_message, QueueUrl=url, MessageBody="x")
    assert "MessageGroupId" in caught.value.response["Error"]["Message"]
    first = await blocking(sqs.send_message, QueueUrl=url, MessageBody="x", MessageGroupId="g")
    second = await blocking(sqs.send_message, QueueUrl=url, MessageBody="x", MessageGroupId="g")
    assert first["MessageId"] == second["MessageId"]  # deduplicated by content
    attributes = (await blocking(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["All"]))["Attributes"]
    assert attributes["FifoQueue"] == "true"
    received = (await blocking(sqs.receive_message, QueueUrl=url, AttributeNames=["All"]))["Messages"]
    assert received[0]["Attributes"]["MessageGroupId"] == "g"
    # As SQS: a FIFO send answers the message's SequenceNumber, and the message carries the same one.
    assert re.fullmatch(r"[0-9]{20}", first["SequenceNumber"])
    assert received[0]["Attributes"]["SequenceNumber"] == first["SequenceNumber"]
    third = await blocking(sqs.send_message, QueueUrl=url, MessageBody="y", MessageGroupId="g")
    assert int(third["SequenceNumber"]) > int(first["SequenceNumber"])


async def test_redrive_policy_moves_messages_to_the_dead_letter_queue(shop: Served) -> None:
    sqs = client(shop.url, "sqs")
    dead = (await blocking(sqs.create_queue, QueueName="dead"))["QueueUrl"]
    arn = (await blocking(sqs.get_queue_attributes, QueueUrl=dead, AttributeNames=["QueueArn"]))["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 1})
    url = (await blocking(sqs.create_queue, QueueName="live", Attributes={"RedrivePolicy": policy}))["QueueUrl"]
    shown = (await blocking(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["RedrivePolicy"]))["Attributes"]
    assert json.loads(shown["RedrivePolicy"]) == {"deadLetterTargetArn": arn, "maxReceiveCount": 1}
    await blocking(sqs.send_message, QueueUrl=url, MessageBody="poison")
    first = (await blocking(sqs.receive_message, QueueUrl=url, VisibilityTimeout=1))["Messages"][0]
    await blocking(
        sqs.change_message_visibility, QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )
    assert (await blocking(sqs.receive_message, QueueUrl=url)).get("Messages") is None
    moved = (await blocking(sqs.receive_message, QueueUrl=dead))["Messages"]
    assert [m["Body"] for m in moved] == ["poison"]


def _attribute(name: str, data_type: str, value: str) -> dict[str, Any]:
    return {name: {"DataType": data_type, "StringValue": value}}


BAD_INPUTS = [
    (lambda s, u: s.send_message(QueueUrl=u, MessageBody="x", DelaySeconds=901), "InvalidParameterValue", "0 to 900"),
    (lambda s, u: s.receive_message(QueueUrl=u, MaxNumberOfMessages=11), "InvalidParameterValue", "1 to 10"),
    (lambda s, u: s.receive_message(QueueUrl=u, WaitTimeSeconds=21), "InvalidParameterValue", "0 to 20"),
    (
        lambda s, u: s.send_message_batch(QueueUrl=u, Entries=[{"Id": "a", "MessageBody": "x"}] * 2),
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
        "repeated",
    ),
    (
        lambda s, u: s.send_message(QueueUrl=u, MessageBody="x", MessageAttributes=_attribute("AWS.x", "String", "v")),
        "InvalidParameterValue",
        "AWS.",
    ),
    (
        lambda s, u: s.send_message(QueueUrl=u, MessageBody="x", MessageAttributes=_attribute("n", "Number", "ten")),
        "InvalidParameterValue",
        "not a number",
    ),
    (
        lambda s, u: s.change_message_visibility(QueueUrl=u, ReceiptHandle="nonsense", VisibilityTimeout=5),
        "AWS.SimpleQueueService.MessageNotInflight",
        "lease ended",
    ),
    (lambda s, u: s.set_queue_attributes(QueueUrl=u, Attributes={"Colour": "red"}), "InvalidAttributeName", "Colour"),
    (
        lambda s, u: s.set_queue_attributes(QueueUrl=u, Attributes={"VisibilityTimeout": "x"}),
        "InvalidAttributeValue",
        "VisibilityTimeout",
    ),
    (lambda s, u: s.get_queue_url(QueueName="nope"), "AWS.SimpleQueueService.NonExistentQueue", "does not exist"),
]


@pytest.mark.parametrize(("call", "code", "message"), BAD_INPUTS)
async def test_bad_input_gets_sqs_error_codes(shop: Served, call: Any, code: str, message: str) -> None:
    sqs = client(shop.url, "sqs")
    url = (await blocking(sqs.create_queue, QueueName="checked"))["QueueUrl"]
    with pytest.raises(ClientError) as caught:
        await blocking(call, sqs, url)
    error = caught.value.response["Error"]
    assert (error["Code"], error.get("Type", "Sender")) == (code, "Sender")
    assert message in error["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Nothing bad was stored.
    assert (await shop.platform.store.queues.stats("checked")).depth == 0


async def test_a_message_move_task_redrives_the_dead_letter_queue(shop: Served) -> None:
    sqs = client(shop.url, "sqs")
    dead = (await blocking(sqs.create_queue, QueueName="parked"))["QueueUrl"]
    dead_arn = "arn:aws:sqs:local:000000000000:parked"
    policy = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 1})
    url = (await blocking(sqs.create_queue, QueueName="work-again", Attributes={"RedrivePolicy": policy}))["QueueUrl"]
    await blocking(sqs.send_message, QueueUrl=url, MessageBody="retry me")
    first = (await blocking(sqs.receive_message, QueueUrl=url))["Messages"][0]
    await blocking(
        sqs.change_message_visibility, QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )
    assert (await blocking(sqs.receive_message, QueueUrl=url)).get("Messages") is None  # moved to `parked` now
    assert (await shop.platform.store.queues.stats("parked")).visible == 1

    handle = (await blocking(sqs.start_message_move_task, SourceArn=dead_arn))["TaskHandle"]

    async def finished() -> dict[str, Any]:
        while True:
            [task] = (await blocking(sqs.list_message_move_tasks, SourceArn=dead_arn))["Results"]
            if task["Status"] != "RUNNING":
                return dict(task)
            await asyncio.sleep(0.05)

    task = await asyncio.wait_for(finished(), timeout=20)
    assert (task["TaskHandle"], task["Status"], task["ApproximateNumberOfMessagesMoved"]) == (handle, "COMPLETED", 1)
    assert task["DestinationArn"] == "arn:aws:sqs:local:000000000000:work-again"
    back = (await blocking(sqs.receive_message, QueueUrl=url))["Messages"]
    assert [m["Body"] for m in back] == ["retry me"]
    assert dead  # the dead-letter queue stays, empty

    with pytest.raises(ClientError) as caught:
        await blocking(sqs.start_message_move_task, SourceArn="arn:aws:sqs:local:000000000000:work-again")
    assert "must be configured as a Dead Letter Queue" in caught.value.response["Error"]["Message"]


async def test_tags_are_kept_and_shown(shop: Served) -> None:
    sqs = client(shop.url, "sqs")
    url = (await blocking(sqs.create_queue, QueueName="tagged", tags={"team": "billing"}))["QueueUrl"]
    assert (await blocking(sqs.list_queue_tags, QueueUrl=url))["Tags"] == {"team": "billing"}
    await blocking(sqs.tag_queue, QueueUrl=url, Tags={"env": "prod", "team": "payments"})
    assert (await blocking(sqs.list_queue_tags, QueueUrl=url))["Tags"] == {"team": "payments", "env": "prod"}
    await blocking(sqs.untag_queue, QueueUrl=url, TagKeys=["team", "absent"])
    assert (await blocking(sqs.list_queue_tags, QueueUrl=url))["Tags"] == {"env": "prod"}
    with pytest.raises(ClientError) as caught:
        await blocking(sqs.tag_queue, QueueUrl=url, Tags={"aws:owner": "x"})
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    # A queue made again after deletion starts without the old tags.
    await blocking(sqs.delete_queue, QueueUrl=url)
    url = (await blocking(sqs.create_queue, QueueName="tagged"))["QueueUrl"]
    assert "Tags" not in await blocking(sqs.list_queue_tags, QueueUrl=url)


async def test_permissions_are_labelled_statements_of_the_policy(shop: Served) -> None:
    sqs = client(shop.url, "sqs")
    url = (await blocking(sqs.create_queue, QueueName="shared"))["QueueUrl"]
    await blocking(
        sqs.add_permission, QueueUrl=url, Label="partner", AWSAccountIds=["111122223333"], Actions=["SendMessage"]
    )
    with pytest.raises(ClientError) as caught:
        await blocking(sqs.add_permission, QueueUrl=url, Label="partner", AWSAccountIds=["1"], Actions=["*"])
    assert "Already exists" in caught.value.response["Error"]["Message"]
    policy = json.loads(
        (await blocking(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["Policy"]))["Attributes"]["Policy"]
    )
    [statement] = policy["Statement"]
    assert statement["Sid"] == "partner"
    assert statement["Principal"] == {"AWS": ["arn:aws:iam::111122223333:root"]}
    assert statement["Action"] == ["SQS:SendMessage"]
    await blocking(sqs.remove_permission, QueueUrl=url, Label="partner")
    shown = (await blocking(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["All"]))["Attributes"]
    assert not shown.get("Policy")
    with pytest.raises(ClientError) as caught:
        await blocking(sqs.remove_permission, QueueUrl=url, Label="partner")
    assert "can't find label" in caught.value.response["Error"]["Message"]
