"""boto3, unchanged but for its endpoint URL, sends to a queue a function consumes."""

import asyncio
import tempfile
from pathlib import Path

import boto3

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("shop")


@app.on_queue("orders")
def take_order(event, context):
    for record in event["Records"]:
        tier = record["messageAttributes"]["tier"]["stringValue"]
        context.send("taken", f"{record['body']} ({tier})")
"""


def produce(url: str) -> str:
    # A producer written for AWS: only the endpoint URL says it is Triggerfish (`triggerfish dev` takes any
    # credentials; under `serve`, an app key's AWS credentials).
    sqs = boto3.client(
        "sqs",
        endpoint_url=f"{url}/-/aws",
        region_name="local",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    queue = sqs.get_queue_url(QueueName="orders")["QueueUrl"]
    sent = sqs.send_message(
        QueueUrl=queue,
        MessageBody="two lamps",
        MessageAttributes={"tier": {"DataType": "String", "StringValue": "gold"}},
    )
    return sent["MessageId"]


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        app_file = Path(directory) / "app.py"
        app_file.write_text(APP)
        async with (
            Platform(str(app_file), data_dir=Path(directory) / ".triggerfish") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
        ):
            # boto3 blocks; the server answering it runs on this event loop, so the producer runs in a thread.
            message_id = await asyncio.to_thread(produce, server.url)
            assert message_id
            # The SendMessage triggered `take_order`, which sent what it saw on.
            (taken,) = await platform.store.queues.receive("taken", wait=10)
            assert taken.body == b"two lamps (gold)"


asyncio.run(main())
