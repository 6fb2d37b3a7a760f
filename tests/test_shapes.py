"""Lambda event shapes, checked against the sample events in AWS's documentation.

Each golden event below is AWS's documented sample with its identifiers
replaced by ours (region "local", account "000000000000"); the builders must
produce it key for key, so handlers written for Lambda read what they expect.
"""

from __future__ import annotations

import datetime
import hashlib
import struct
from typing import Any

import pytest

from triggerfish.errors import InvalidInputError
from triggerfish.events.shapes import (
    ACCOUNT_ID,
    REGION,
    SnsMessage,
    dynamodb_record,
    iso_millis,
    md5_of_message_attributes,
    partial_batch_failures,
    s3_record,
    scheduled_event,
    sns_records,
    sqs_records,
    to_attribute_value,
)
from triggerfish.store.base import Message

SENT = 1545082649.183
FIRST = 1545082649.185


def message(body: bytes = b"Test message.", **overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "queue": "my-queue",
        "message_id": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "receipt": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": body,
        "attributes": {},
        "group": None,
        "dedup_id": None,
        "receive_count": 1,
        "sent_at": SENT,
        "first_received_at": FIRST,
        "lease_expires_at": FIRST + 30,
    }
    fields.update(overrides)
    return Message(**fields)


def test_sqs_record_matches_the_documented_sample() -> None:
    # From "Using Lambda with Amazon SQS": the standard-queue sample event.
    expected = {
        "Records": [
            {
                "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
                "body": "Test message.",
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1545082649183",
                    "SenderId": "000000000000",
                    "ApproximateFirstReceiveTimestamp": "1545082649185",
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:local:000000000000:my-queue",
                "awsRegion": "local",
            }
        ]
    }
    assert sqs_records([message()]) == expected


def test_sqs_fifo_record_carries_group_and_dedup_id() -> None:
    record = sqs_records([message(group="order-1", dedup_id="d-1", receive_count=3)])["Records"][0]
    assert record["attributes"]["MessageGroupId"] == "order-1"
    assert record["attributes"]["MessageDeduplicationId"] == "d-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "3"
    # As SQS's FIFO records: a 20-digit SequenceNumber, growing with the time the message was sent.
    sequence = record["attributes"]["SequenceNumber"]
    assert len(sequence) == 20
    assert sequence.isdigit()
    later = sqs_records([message(group="order-1", sent_at=SENT + 1)])["Records"][0]["attributes"]["SequenceNumber"]
    assert int(later) > int(sequence)
    # One sent through the AWS endpoint carries the number SendMessage answered, hidden from the attributes.
    sent = message(group="order-1", attributes={"triggerfish.sqs-sequence": "18849496460467696128"})
    shown = sqs_records([sent])["Records"][0]
    assert shown["attributes"]["SequenceNumber"] == "18849496460467696128"
    assert shown["messageAttributes"] == {}
    assert "SequenceNumber" not in sqs_records([message()])["Records"][0]["attributes"]


def test_sqs_message_attributes_use_the_lambda_shape_and_digest() -> None:
    record = sqs_records([message(attributes={"tenant": "acme", "kind": "order"})])["Records"][0]
    assert record["messageAttributes"]["tenant"] == {
        "stringValue": "acme",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    # SQS's digest: per attribute in name order, length-prefixed name, type, transport byte 1, value.
    raw = b""
    for name, value in (("kind", "order"), ("tenant", "acme")):
        for part in (name, "String"):
            raw += struct.pack(">I", len(part)) + part.encode()
        raw += b"\x01" + struct.pack(">I", len(value)) + value.encode()
    assert record["md5OfMessageAttributes"] == hashlib.md5(raw).hexdigest()
    assert md5_of_message_attributes({"tenant": "acme", "kind": "order"}) == record["md5OfMessageAttributes"]


def test_sqs_md5_of_body_is_over_the_utf8_bytes() -> None:
    body = "Hello from SQS!"
    record = sqs_records([message(body=body.encode())])["Records"][0]
    assert record["md5OfBody"] == "7b270e59b47ff90a553787216d55d91d"  # AWS's sample digest for this body
    unicode_record = sqs_records([message(body="déjà vu ✓".encode())])["Records"][0]
    assert unicode_record["body"] == "déjà vu ✓"


def test_sqs_queue_arn_can_be_given() -> None:
    arn = "arn:aws:sqs:local:000000000000:other"
    assert sqs_records([message()], queue_arn=arn)["Records"][0]["eventSourceARN"] == arn


def test_sqs_body_that_is_not_utf8_is_rejected_naming_the_message() -> None:
    with pytest.raises(InvalidInputError, match=r"059f36b4.*not UTF-8.*byte 2"):
        sqs_records([message(body=b"ok\xff\xfe")])


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        (None, []),
        ({"batchItemFailures": []}, []),
        ({"batchItemFailures": None}, []),
        ("done", []),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, ["b"]),
        ({"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "b"}]}, ["b"]),
        # Lambda fails the whole batch when the response names something it cannot use.
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, ["a", "b", "c"]),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, ["a", "b", "c"]),
        ({"batchItemFailures": [{"id": "a"}]}, ["a", "b", "c"]),
        ({"batchItemFailures": "a"}, ["a", "b", "c"]),
        ({"batchItemFailures": [7]}, ["a", "b", "c"]),
    ],
)
def test_partial_batch_failures(result: Any, failed: list[str]) -> None:
    assert partial_batch_failures(result, ["a", "b", "c"]) == failed


def test_sns_record_matches_the_documented_sample() -> None:
    published = datetime.datetime(2019, 1, 2, 12, 45, 7, tzinfo=datetime.UTC).timestamp()
    event = sns_records(
        "sns-lambda",
        [
            SnsMessage(
                message_id="95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                message="Hello from SNS!",
                timestamp=published,
                subject="TestInvoke",
                attributes={"Test": "TestString"},
            )
        ],
        subscription_id="21be56ed-a058-49f5-8c98-aedd2564c486",
    )
    assert event == {
        "Records": [
            {
                "EventVersion": "1.0",
                "EventSubscriptionArn": (
                    "arn:aws:sns:local:000000000000:sns-lambda:21be56ed-a058-49f5-8c98-aedd2564c486"
                ),
                "EventSource": "aws:sns",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                    "TopicArn": "arn:aws:sns:local:000000000000:sns-lambda",
                    "Subject": "TestInvoke",
                    "Message": "Hello from SNS!",
                    "Timestamp": "2019-01-02T12:45:07.000Z",
                    "SignatureVersion": "1",
                    "Signature": "",
                    "SigningCertUrl": "",
                    "UnsubscribeUrl": "",
                    "MessageAttributes": {"Test": {"Type": "String", "Value": "TestString"}},
                },
            }
        ]
    }


def test_sns_subject_may_be_null() -> None:
    event = sns_records("t", [SnsMessage("m", "x", 0.0)])
    assert event["Records"][0]["Sns"]["Subject"] is None


def test_scheduled_event_matches_the_documented_sample() -> None:
    fired = datetime.datetime(2015, 10, 8, 16, 53, 6, 250000, tzinfo=datetime.UTC)
    assert scheduled_event("my-scheduled-rule", fired, event_id="53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa") == {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": "2015-10-08T16:53:06Z",
        "region": REGION,
        "resources": ["arn:aws:events:local:000000000000:rule/my-scheduled-rule"],
        "detail": {},
    }


def test_scheduled_event_takes_epoch_seconds_and_makes_fresh_ids() -> None:
    first = scheduled_event("nightly", 0.0)
    second = scheduled_event("nightly", 0.0)
    assert first["time"] == "1970-01-01T00:00:00Z"
    assert first["id"] != second["id"]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="no time zone"):
        scheduled_event("nightly", datetime.datetime(2024, 1, 1))


def test_s3_record_matches_the_documented_sample() -> None:
    when = datetime.datetime(2019, 9, 3, 19, 37, 27, 192000, tzinfo=datetime.UTC)
    record = s3_record(
        "example-bucket",
        "test/key",
        event_name="ObjectCreated:Put",
        time=when,
        size=1305107,
        etag="b21b84d653bb07b05b1e6b33684dc11b",
        sequencer="0C0F6F405D6ED209E1",
    )
    assert record["eventVersion"] == "2.1"
    assert record["eventSource"] == "aws:s3"
    assert record["eventTime"] == "2019-09-03T19:37:27.192Z"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["s3SchemaVersion"] == "1.0"
    assert record["s3"]["bucket"] == {
        "name": "example-bucket",
        "ownerIdentity": {"principalId": ACCOUNT_ID},
        "arn": "arn:aws:s3:::example-bucket",
    }
    assert record["s3"]["object"] == {
        "key": "test/key",
        "size": 1305107,
        "eTag": "b21b84d653bb07b05b1e6b33684dc11b",
        "sequencer": "0C0F6F405D6ED209E1",
    }
    assert set(record) == {
        "eventVersion",
        "eventSource",
        "awsRegion",
        "eventTime",
        "eventName",
        "userIdentity",
        "requestParameters",
        "responseElements",
        "s3",
    }


def test_s3_keys_are_url_encoded_like_s3() -> None:
    record = s3_record("b", "photos/my cat+dog.jpg", event_name="ObjectRemoved:Delete", time=0.0)
    assert record["s3"]["object"]["key"] == "photos/my+cat%2Bdog.jpg"
    assert "size" not in record["s3"]["object"]


def test_s3_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="unknown S3 event name 'ObjectCreated:\\*'"):
        s3_record("b", "k", event_name="ObjectCreated:*", time=0.0)
    with pytest.raises(InvalidInputError, match="needs the object's size and etag"):
        s3_record("b", "k", event_name="ObjectCreated:Put", time=0.0)


def test_dynamodb_record_matches_the_documented_sample() -> None:
    record = dynamodb_record(
        "my-table",
        "insert",
        keys={"Id": 101},
        new_image={"Message": "New item!", "Id": 101},
        sequence_number=111,
        time=1686425176,
        event_id="1",
    )
    assert record["eventID"] == "1"
    assert record["eventName"] == "INSERT"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["awsRegion"] == REGION
    assert record["eventSourceARN"].startswith("arn:aws:dynamodb:local:000000000000:table/my-table/stream/")
    change = record["dynamodb"]
    assert change["Keys"] == {"Id": {"N": "101"}}
    assert change["NewImage"] == {"Message": {"S": "New item!"}, "Id": {"N": "101"}}
    assert "OldImage" not in change
    assert change["SequenceNumber"] == "111"
    assert change["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert change["ApproximateCreationDateTime"] == 1686425176
    assert isinstance(change["SizeBytes"], int)
    assert change["SizeBytes"] > 0


def test_dynamodb_images_follow_the_view_type() -> None:
    keys_only = dynamodb_record(
        "t", "modify", keys={"k": "a"}, new_image={"k": "a", "v": 2}, old_image={"k": "a", "v": 1},
        sequence_number=2, time=0, view_type="KEYS_ONLY",
    )  # fmt: skip
    assert "NewImage" not in keys_only["dynamodb"]
    assert "OldImage" not in keys_only["dynamodb"]
    removed = dynamodb_record("t", "remove", keys={"k": "a"}, old_image={"k": "a"}, sequence_number=3, time=0)
    assert removed["eventName"] == "REMOVE"
    assert removed["dynamodb"]["OldImage"] == {"k": {"S": "a"}}


@pytest.mark.parametrize(
    ("value", "typed"),
    [
        ("x", {"S": "x"}),
        (1, {"N": "1"}),
        (2.5, {"N": "2.5"}),
        (True, {"BOOL": True}),
        (None, {"NULL": True}),
        (b"\x00\x01", {"B": "AAE="}),
        ([1, "a"], {"L": [{"N": "1"}, {"S": "a"}]}),
        ({"a": {"b": False}}, {"M": {"a": {"M": {"b": {"BOOL": False}}}}}),
        ({"b", "a"}, {"SS": ["a", "b"]}),
        ({2, 1}, {"NS": ["1", "2"]}),
        ({b"\x01"}, {"BS": ["AQ=="]}),
    ],
)
def test_dynamodb_attribute_values(value: Any, typed: dict[str, Any]) -> None:
    assert to_attribute_value(value) == typed


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (set(), "cannot be empty"),
        ({1, "a"}, "only strings"),
        (object(), "no type for object"),
        ({"deep": [1, {"x": float("-inf")}]}, r"value\.deep\[1\]\.x"),
    ],
)
def test_dynamodb_attribute_values_reject_what_dynamodb_cannot_hold(value: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        to_attribute_value(value)


def test_dynamodb_unknown_operation() -> None:
    with pytest.raises(InvalidInputError, match="unknown change operation 'upsert'"):
        dynamodb_record("t", "upsert", keys={}, sequence_number=1, time=0)  # type: ignore[arg-type]


def test_iso_millis_truncates_to_the_millisecond() -> None:
    assert iso_millis(1.2349) == "1970-01-01T00:00:01.234Z"


def test_platform_attributes_are_not_shown_as_message_attributes() -> None:
    record = sqs_records([message(attributes={"triggerfish.hopcount": "3", "tenant": "acme"})])["Records"][0]
    assert list(record["messageAttributes"]) == ["tenant"]
    assert record["md5OfMessageAttributes"] == md5_of_message_attributes({"tenant": "acme"})
    plain = sqs_records([message(attributes={"triggerfish.traceparent": "00-x"})])["Records"][0]
    assert plain["messageAttributes"] == {}
    assert "md5OfMessageAttributes" not in plain
