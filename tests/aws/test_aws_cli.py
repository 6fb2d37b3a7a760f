"""The AWS CLI, as a user runs it, against `triggerfish dev` with only AWS_ENDPOINT_URL and credentials set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import QUEUE_APP, client
from tests.server.devserver import DevServer, poll


def aws(dev: DevServer, *args: str) -> Any:
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
        [sys.executable, "-m", "awscli", *args, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout) if done.stdout.strip() else None


@pytest.mark.slow
@pytest.mark.timeout(240)  # every `aws` is an interpreter start of its own, about a second each
def test_the_aws_cli_sends_messages_publishes_and_puts_events(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(QUEUE_APP))
    dev = DevServer("app.py", "--port", "0", "--no-reload", cwd=tmp_path)
    try:
        dev.start()
        url = aws(dev, "sqs", "get-queue-url", "--queue-name", "orders")["QueueUrl"]
        sent = aws(dev, "sqs", "send-message", "--queue-url", url, "--message-body", "from the cli")
        assert len(sent["MD5OfMessageBody"]) == 32
        aws(dev, "sqs", "tag-queue", "--queue-url", url, "--tags", "team=ops")
        assert aws(dev, "sqs", "list-queue-tags", "--queue-url", url)["Tags"] == {"team": "ops"}

        entries = json.dumps([{"Source": "shop", "DetailType": "Tested", "Detail": '{"via": "cli"}'}])
        put = aws(dev, "events", "put-events", "--entries", entries)
        assert put["FailedEntryCount"] == 0

        topic = "arn:aws:sns:local:000000000000:shipments"
        assert topic in [t["TopicArn"] for t in aws(dev, "sns", "list-topics")["Topics"]]
        published = aws(dev, "sns", "publish", "--topic-arn", topic, "--message", "parcel", "--subject", "cli")
        assert published["MessageId"]

        functions = [f["FunctionName"] for f in aws(dev, "lambda", "list-functions")["Functions"]]
        assert "shop-take_order" in functions
        qualified = aws(dev, "lambda", "get-function", "--function-name", "shop-take_order", "--qualifier", "1")
        assert qualified["Configuration"]["Version"] == "1"

        rule = aws(dev, "events", "put-rule", "--name", "cli-rule", "--event-pattern", '{"source": ["cli"]}')
        assert rule["RuleArn"].endswith(":rule/cli-rule")
        names = [r["Name"] for r in aws(dev, "events", "list-rules")["Rules"]]
        assert "cli-rule" in names

        # The queue's function ran for the CLI's message; what it saw is on `taken` (polled with boto3: each
        # CLI run is an interpreter start).
        sqs = client(dev.url, "sqs")

        def taken() -> list[dict[str, Any]] | None:
            if not any(u.endswith("/taken") for u in sqs.list_queues().get("QueueUrls", [])):
                return None
            found = sqs.receive_message(QueueUrl=url.replace("/orders", "/taken"), WaitTimeSeconds=1)
            return [json.loads(m["Body"]) for m in found.get("Messages", [])] or None

        [message] = poll(taken, timeout=30, interval=0.2)
        assert message["body"] == "from the cli"

        # The published message reached the topic's function signed, its links on this dev server.
        def shipped() -> list[dict[str, Any]] | None:
            found = sqs.receive_message(QueueUrl=url.replace("/orders", "/shipments-seen"), WaitTimeSeconds=1)
            return [json.loads(m["Body"]) for m in found.get("Messages", [])] or None

        [record] = poll(shipped, timeout=30, interval=0.2)
        assert record["Signature"]
        assert record["SigningCertUrl"].startswith(f"{dev.url}/-/aws/sns/shop/")
    finally:
        dev.stop()
