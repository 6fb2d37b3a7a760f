"""S3's bucket notification configuration with boto3: uploads reach the platform's queues and topics.

On SQLite and PostgreSQL (the `served` server of conftest); the parsing and matching are tested pure
in test_notification_documents.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.aws.conftest import blocking
from tests.objects.conftest import s3
from tests.server.conftest import Served

pytestmark = pytest.mark.asyncio(loop_scope="module")

_MADE: list[Any] = []


@pytest.fixture(autouse=True)
def _close() -> Iterator[None]:
    yield
    while _MADE:
        _MADE.pop().close()


def aws(url: str, service: str) -> Any:
    made = boto3.client(
        service,
        endpoint_url=f"{url}/-/aws",
        region_name="local",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, read_timeout=30),
    )
    _MADE.append(made)
    return made


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


def bodies(sqs: Any, url: str, count: int, *, within: int = 30) -> list[dict[str, Any]]:
    """The JSON bodies of the first `count` messages of a queue (long polls, deleting what it reads)."""
    found: list[dict[str, Any]] = []
    for _ in range(within):
        if len(found) >= count:
            break
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for message in got:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


async def test_uploads_go_to_a_queue_with_filters(served: Served) -> None:
    c, sqs = s3(served.url), aws(served.url, "sqs")

    def work() -> None:
        c.create_bucket(Bucket="nq-bucket")
        url = sqs.create_queue(QueueName="nq-jpgs")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        config = {
            "QueueConfigurations": [
                {
                    "Id": "jpgs",
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [{"Name": "prefix", "Value": "in/"}, {"Name": "suffix", "Value": ".jpg"}]
                        }
                    },
                }
            ]
        }
        c.put_bucket_notification_configuration(Bucket="nq-bucket", NotificationConfiguration=config)
        got = c.get_bucket_notification_configuration(Bucket="nq-bucket")
        assert got["QueueConfigurations"] == [
            {
                "Id": "jpgs",
                "QueueArn": arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {
                    "Key": {"FilterRules": [{"Name": "Prefix", "Value": "in/"}, {"Name": "Suffix", "Value": ".jpg"}]}
                },
            }
        ]
        [test_event] = bodies(sqs, url, 1)
        assert test_event["Event"] == "s3:TestEvent"
        assert test_event["Bucket"] == "nq-bucket"
        c.put_object(Bucket="nq-bucket", Key="in/a b.jpg", Body=b"12345")
        c.put_object(Bucket="nq-bucket", Key="in/skip.png", Body=b"x")  # suffix does not match
        c.put_object(Bucket="nq-bucket", Key="out/skip.jpg", Body=b"x")  # prefix does not match
        c.delete_object(Bucket="nq-bucket", Key="in/a b.jpg")  # not an ObjectCreated event
        c.copy_object(Bucket="nq-bucket", Key="in/c.jpg", CopySource="nq-bucket/out/skip.jpg")
        found = bodies(sqs, url, 2)
        records = [r for body in found for r in body["Records"]]
        assert sorted(r["eventName"] for r in records) == ["ObjectCreated:Copy", "ObjectCreated:Put"]
        put = next(r for r in records if r["eventName"] == "ObjectCreated:Put")
        assert put["eventSource"] == "aws:s3"
        assert put["s3"]["configurationId"] == "jpgs"
        assert put["s3"]["bucket"]["name"] == "nq-bucket"
        assert put["s3"]["object"]["key"] == "in/a+b.jpg"
        assert put["s3"]["object"]["size"] == 5
        assert bodies(sqs, url, 1, within=2) == []  # nothing else came
        # an empty configuration turns notifications off
        c.put_bucket_notification_configuration(Bucket="nq-bucket", NotificationConfiguration={})
        assert "QueueConfigurations" not in c.get_bucket_notification_configuration(Bucket="nq-bucket")
        c.put_object(Bucket="nq-bucket", Key="in/later.jpg", Body=b"x")
        assert bodies(sqs, url, 1, within=2) == []

    await blocking(work)


async def test_uploads_are_published_to_a_topic(served: Served) -> None:
    c, sqs, sns = s3(served.url), aws(served.url, "sqs"), aws(served.url, "sns")

    def work() -> None:
        c.create_bucket(Bucket="nt-bucket")
        topic = sns.create_topic(Name="nt-uploads")["TopicArn"]
        url = sqs.create_queue(QueueName="nt-subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        config = {"TopicConfigurations": [{"Id": "all", "TopicArn": topic, "Events": ["s3:ObjectRemoved:*"]}]}
        c.put_bucket_notification_configuration(Bucket="nt-bucket", NotificationConfiguration=config)
        got = c.get_bucket_notification_configuration(Bucket="nt-bucket")["TopicConfigurations"]
        assert got == [{"Id": "all", "TopicArn": topic, "Events": ["s3:ObjectRemoved:*"]}]
        c.put_object(Bucket="nt-bucket", Key="k", Body=b"x")  # a create: not configured
        c.delete_object(Bucket="nt-bucket", Key="k")
        [notification] = bodies(sqs, url, 1)
        assert notification["Type"] == "Notification"
        assert notification["TopicArn"] == topic
        assert notification["Subject"] == "Amazon S3 Notification"
        [record] = json.loads(notification["Message"])["Records"]
        assert record["eventName"] == "ObjectRemoved:Delete"
        assert record["s3"]["object"]["key"] == "k"
        assert record["s3"]["configurationId"] == "all"

    await blocking(work)


async def test_bad_configurations_are_refused(served: Served) -> None:
    c = s3(served.url)

    def put(config: dict[str, Any]) -> tuple[str, str]:
        return error_of(c.put_bucket_notification_configuration, Bucket="nb-bucket", NotificationConfiguration=config)

    def work() -> None:
        c.create_bucket(Bucket="nb-bucket")
        missing = "arn:aws:sqs:local:000000000000:nb-no-such-queue"
        code, message = put({"QueueConfigurations": [{"QueueArn": missing, "Events": ["s3:ObjectCreated:*"]}]})
        assert code == "InvalidArgument"
        assert "Unable to validate the following destination configurations" in message
        assert missing in message
        topic = "arn:aws:sns:local:000000000000:nb-no-such-topic"
        code, message = put({"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]})
        assert code == "InvalidArgument"
        assert topic in message
        code, message = put({"QueueConfigurations": [{"QueueArn": "not-an-arn", "Events": ["s3:ObjectCreated:*"]}]})
        assert code == "InvalidArgument"
        assert "not an SQS ARN" in message
        arn = aws(served.url, "sqs").create_queue(QueueName="nb-queue")["QueueUrl"].rsplit("/", 1)[-1]
        good = f"arn:aws:sqs:local:000000000000:{arn}"
        code, message = put({"QueueConfigurations": [{"QueueArn": good, "Events": ["s3:ObjectMade:*"]}]})
        assert code == "InvalidArgument"
        assert "The event is not supported for notifications" in message
        assert "s3:ObjectMade:*" in message
        assert c.get_bucket_notification_configuration(Bucket="nb-bucket").get("QueueConfigurations") is None
        code, _ = error_of(c.get_bucket_notification_configuration, Bucket="nb-no-such-bucket")
        assert code == "NoSuchBucket"

    await blocking(work)
