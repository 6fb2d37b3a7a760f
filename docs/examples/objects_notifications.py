"""A bucket's notification configuration sends S3's event records to a queue, with boto3 end to end."""

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import boto3

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("photos")


@app.function()
def hello(event, context):
    return "the queue is read with boto3's SQS client, no function needed"
"""


def client(url: str, service: str) -> object:
    return boto3.client(
        service,
        endpoint_url=f"{url}/-/aws",
        region_name="local",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def upload_and_read(url: str) -> list[dict]:
    s3: Any = client(url, "s3")
    sqs: Any = client(url, "sqs")
    s3.create_bucket(Bucket="photos")
    queue_url = sqs.create_queue(QueueName="new-photos")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert queue_arn == "arn:aws:sqs:local:000000000000:new-photos"
    s3.put_bucket_notification_configuration(
        Bucket="photos",
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "jpegs",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".jpg"}]}},
                }
            ]
        },
    )
    s3.put_object(Bucket="photos", Key="notes.txt", Body=b"no notification: not a .jpg")
    s3.put_object(Bucket="photos", Key="cats/tom.jpg", Body=b"\xff\xd8 a jpeg")
    bodies: list[dict] = []
    while len(bodies) < 2:  # S3's s3:TestEvent, sent when the configuration was put, then the upload's record
        for message in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5).get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        app_file = Path(directory) / "app.py"
        app_file.write_text(APP)
        async with (
            Platform(str(app_file), data_dir=Path(directory) / ".triggerfish") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
        ):
            test_event, upload = await asyncio.to_thread(upload_and_read, server.url)  # boto3 blocks: in a thread
            assert test_event["Event"] == "s3:TestEvent"
            (record,) = upload["Records"]
            assert record["eventName"] == "ObjectCreated:Put"
            assert record["s3"]["configurationId"] == "jpegs"
            assert record["s3"]["object"]["key"] == "cats/tom.jpg"


asyncio.run(main())
