"""EventBridge with boto3: a rule made at run time routes PutEvents entries to a queue; a bad entry fails alone."""

import asyncio
import json
import tempfile
from pathlib import Path

import boto3

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("billing")


@app.http("GET", "/")
def index(event, context):
    return "billing"
"""


def operate(url: str) -> dict:
    events = boto3.client(
        "events",
        endpoint_url=f"{url}/-/aws",
        region_name="local",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    events.put_rule(Name="invoices", EventPattern=json.dumps({"source": ["billing"], "detail-type": ["Invoiced"]}))
    events.put_targets(Rule="invoices", Targets=[{"Id": "copy", "Arn": "arn:aws:sqs:local:000000000000:invoices"}])
    return events.put_events(
        Entries=[
            {"Source": "billing", "DetailType": "Invoiced", "Detail": json.dumps({"invoice": 7})},
            {"Source": "billing", "DetailType": "Invoiced", "Detail": "not JSON"},
        ]
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        app_file = Path(directory) / "app.py"
        app_file.write_text(APP)
        async with (
            Platform(str(app_file), data_dir=Path(directory) / ".triggerfish") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
        ):
            answer = await asyncio.to_thread(operate, server.url)
            # Each entry has its own result: the good one an EventId, the bad one its error.
            assert answer["FailedEntryCount"] == 1
            assert "EventId" in answer["Entries"][0]
            assert answer["Entries"][1]["ErrorCode"] == "MalformedDetail"
            # The rule's queue target got the accepted event, as the EventBridge envelope.
            (message,) = await platform.store.queues.receive("invoices", wait=10)
            envelope = json.loads(message.body)
            assert (envelope["detail-type"], envelope["detail"]) == ("Invoiced", {"invoice": 7})


asyncio.run(main())
