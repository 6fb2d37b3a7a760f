"""`triggerfish dev` as a user runs it: boto3 against its `/-/aws`, and functions that call it with boto3 too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from tests.aws.conftest import client
from tests.server.devserver import DevServer, poll

# A module that reads its configuration at import, as ported Lambda code does, and a producer written for AWS.
PRODUCER_APP = """
import json
import os

import boto3
import triggerfish

app = triggerfish.App("producer")

SEEN_AT_IMPORT = {name: os.environ.get(name) for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_REGION")}
sqs = boto3.client("sqs")  # nothing but the environment says where SQS is


@app.http("POST", "/orders")
def place(event, context):
    url = sqs.get_queue_url(QueueName="orders")["QueueUrl"]
    sent = sqs.send_message(QueueUrl=url, MessageBody=json.loads(event["body"])["item"])
    return {"message_id": sent["MessageId"], "seen_at_import": SEEN_AT_IMPORT}


@app.on_queue("orders")
def fulfil(event, context):
    for record in event["Records"]:
        context.send("fulfilled", record["body"])
"""


def test_functions_reach_the_endpoint_through_their_environment(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(PRODUCER_APP))
    dev = DevServer("app.py", "--port", "0", "--no-reload", cwd=tmp_path)
    try:
        dev.start()
        answer = httpx.post(f"{dev.url}/orders", json={"item": "one lamp"}, timeout=30).json()
        assert answer["seen_at_import"] == {
            "AWS_ENDPOINT_URL": f"{dev.url}/-/aws",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_REGION": "local",
        }
        # The boto3 SendMessage inside the function triggered the queue's function; what it did arrives here.
        sqs = client(dev.url, "sqs", aws_access_key_id="anything", aws_secret_access_key="at all")

        def fulfilled() -> list[str] | None:
            if not _exists(sqs, "fulfilled"):  # the queue exists once the function first sent to it
                return None
            url = sqs.get_queue_url(QueueName="fulfilled")["QueueUrl"]
            messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
            return [m["Body"] for m in messages] or None

        assert poll(fulfilled, timeout=20) == ["one lamp"]
    finally:
        dev.stop()


def _exists(sqs: object, name: str) -> bool:
    urls: list[str] = sqs.list_queues().get("QueueUrls", [])  # type: ignore[attr-defined]
    return any(u.rsplit("/", 1)[1] == name for u in urls)


def test_dev_accepts_any_well_formed_signature_and_answers_json_errors(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(PRODUCER_APP))
    dev = DevServer("app.py", "--port", "0", "--no-reload", cwd=tmp_path)
    try:
        dev.start()
        unsigned = httpx.post(
            f"{dev.url}/-/aws/",
            content=json.dumps({"QueueName": "orders"}),
            headers={"X-Amz-Target": "AmazonSQS.GetQueueUrl", "Content-Type": "application/x-amz-json-1.0"},
        )
        assert unsigned.status_code == 403
        assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"
        assert unsigned.headers["x-amzn-query-error"] == "MissingAuthenticationToken;Sender"
        signed = client(dev.url, "sqs", aws_access_key_id="x", aws_secret_access_key="y")
        assert signed.get_queue_url(QueueName="orders")["QueueUrl"].endswith("/-/aws/000000000000/orders")

        # A producer script written for AWS runs with only the endpoint (and local credentials) set.
        (tmp_path / "producer.py").write_text(textwrap.dedent(PRODUCER_SCRIPT))
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": f"{dev.url}/-/aws",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "local",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        done = subprocess.run(
            [sys.executable, "producer.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"sent": True, "published": True, "put": 0}
    finally:
        dev.stop()


PRODUCER_SCRIPT = """
import json

import boto3

sqs, sns, events = boto3.client("sqs"), boto3.client("sns"), boto3.client("events")
url = sqs.create_queue(QueueName="outbox")["QueueUrl"]
sent = sqs.send_message(QueueUrl=url, MessageBody="hello")
topic = sns.create_topic(Name="news")["TopicArn"]
published = sns.publish(TopicArn=topic, Message="extra")
put = events.put_events(Entries=[{"Source": "producer", "DetailType": "Hello", "Detail": "{}"}])
print(json.dumps({"sent": bool(sent["MessageId"]), "published": bool(published["MessageId"]),
                  "put": put["FailedEntryCount"]}))
"""
