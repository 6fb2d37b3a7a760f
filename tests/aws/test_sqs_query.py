"""SQS's query protocol, as clients older than botocore 1.34 (and hand-written ones) speak it: forms in, XML out.

Requests are signed with botocore's own SigV4 signer and sent over a real socket; answers are read as
the XML SQS documents for its 2012-11-05 API.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.server.conftest import Served

NS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/"}


async def query(served: Served, form: dict[str, str], path: str = "/-/aws") -> tuple[int, ET.Element]:
    """POST a signed query-protocol form; the status and the parsed XML answer."""
    url = f"{served.url}{path}"
    body = urlencode({**form, "Version": "2012-11-05"})
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials("test", "test"), "sqs", "local").add_auth(request)
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(url, content=body, headers=dict(request.headers.items()))
    assert answer.headers["content-type"] == "text/xml"
    return answer.status_code, ET.fromstring(answer.content)


def text(root: ET.Element, path: str) -> str:
    found = root.find(path, NS)
    assert found is not None, f"no {path} in {ET.tostring(root).decode()}"
    return found.text or ""


def every(root: ET.Element, path: str) -> list[ET.Element]:
    return root.findall(path, NS)


def pairs(elements: list[ET.Element], key: str = "Name", value: str = "Value") -> dict[str, Any]:
    return {text(e, f"sqs:{key}"): text(e, f"sqs:{value}") for e in elements}


async def test_a_queue_made_sent_to_and_read_in_the_query_protocol(shop: Served) -> None:
    status, made = await query(
        shop,
        {
            "Action": "CreateQueue",
            "QueueName": "legacy",
            "Attribute.1.Name": "VisibilityTimeout",
            "Attribute.1.Value": "45",
        },
    )
    assert status == 200
    url = text(made, "sqs:CreateQueueResult/sqs:QueueUrl")
    assert url.endswith("/-/aws/000000000000/legacy")
    _, found = await query(shop, {"Action": "GetQueueUrl", "QueueName": "legacy"})
    assert text(found, "sqs:GetQueueUrlResult/sqs:QueueUrl") == url

    _, sent = await query(
        shop,
        {
            "Action": "SendMessage",
            "QueueUrl": url,
            "MessageBody": "héllo <old> client",
            "MessageAttribute.1.Name": "kind",
            "MessageAttribute.1.Value.DataType": "String",
            "MessageAttribute.1.Value.StringValue": "greeting",
            "MessageAttribute.2.Name": "blob",
            "MessageAttribute.2.Value.DataType": "Binary",
            "MessageAttribute.2.Value.BinaryValue": base64.b64encode(b"\x00\x01").decode(),
        },
    )
    result = "sqs:SendMessageResult"
    assert text(sent, f"{result}/sqs:MD5OfMessageBody") == hashlib.md5("héllo <old> client".encode()).hexdigest()
    assert text(sent, f"{result}/sqs:MessageId")

    _, received = await query(
        shop,
        {"Action": "ReceiveMessage", "QueueUrl": url, "AttributeName.1": "All", "MessageAttributeName.1": "All"},
    )
    [message] = every(received, "sqs:ReceiveMessageResult/sqs:Message")
    assert text(message, "sqs:Body") == "héllo <old> client"
    assert text(message, "sqs:MessageId") == text(sent, f"{result}/sqs:MessageId")
    assert pairs(every(message, "sqs:Attribute"))["ApproximateReceiveCount"] == "1"
    typed = {text(a, "sqs:Name"): a.find("sqs:Value", NS) for a in every(message, "sqs:MessageAttribute")}
    assert text(typed["kind"], "sqs:StringValue") == "greeting"  # type: ignore[arg-type]
    assert base64.b64decode(text(typed["blob"], "sqs:BinaryValue")) == b"\x00\x01"  # type: ignore[arg-type]
    assert text(message, "sqs:MD5OfMessageAttributes") == text(sent, f"{result}/sqs:MD5OfMessageAttributes")
    await query(shop, {"Action": "DeleteMessage", "QueueUrl": url, "ReceiptHandle": text(message, "sqs:ReceiptHandle")})

    _, attributes = await query(
        shop, {"Action": "GetQueueAttributes", "QueueUrl": url, "AttributeName.1": "VisibilityTimeout"}
    )
    assert pairs(every(attributes, "sqs:GetQueueAttributesResult/sqs:Attribute")) == {"VisibilityTimeout": "45"}
    _, listed = await query(shop, {"Action": "ListQueues", "QueueNamePrefix": "leg"})
    assert [e.text for e in every(listed, "sqs:ListQueuesResult/sqs:QueueUrl")] == [url]


async def test_batches_tags_and_a_queue_named_by_the_url_posted_to(shop: Served) -> None:
    await query(shop, {"Action": "CreateQueue", "QueueName": "batched", "Tag.1.Key": "team", "Tag.1.Value": "ops"})
    # Posted to the queue's own URL, without QueueUrl: the query protocol's older form.
    queue_path = "/-/aws/000000000000/batched"
    _, sent = await query(
        shop,
        {
            "Action": "SendMessageBatch",
            "SendMessageBatchRequestEntry.1.Id": "a",
            "SendMessageBatchRequestEntry.1.MessageBody": "one",
            "SendMessageBatchRequestEntry.2.Id": "b",
            "SendMessageBatchRequestEntry.2.MessageBody": "two",
            "SendMessageBatchRequestEntry.2.DelaySeconds": "3600",  # over SQS's 15 minutes: this entry fails alone
        },
        path=queue_path,
    )
    result = "sqs:SendMessageBatchResult"
    assert [text(e, "sqs:Id") for e in every(sent, f"{result}/sqs:SendMessageBatchResultEntry")] == ["a"]
    [failed] = every(sent, f"{result}/sqs:BatchResultErrorEntry")
    assert (text(failed, "sqs:Id"), text(failed, "sqs:SenderFault")) == ("b", "true")

    await query(shop, {"Action": "TagQueue", "Tag.1.Key": "env", "Tag.1.Value": "prod"}, path=queue_path)
    _, tags = await query(shop, {"Action": "ListQueueTags"}, path=queue_path)
    assert pairs(every(tags, "sqs:ListQueueTagsResult/sqs:Tag"), "Key") == {"team": "ops", "env": "prod"}


async def test_errors_are_the_query_protocols_xml_with_sqs_codes(shop: Served) -> None:
    status, error = await query(shop, {"Action": "GetQueueUrl", "QueueName": "nowhere"})
    assert status == 400
    assert text(error, "Error/Code") == "AWS.SimpleQueueService.NonExistentQueue"
    assert text(error, "Error/Type") == "Sender"
    assert "nowhere" in text(error, "Error/Message")
    status, error = await query(shop, {"Action": "FlyQueue"})
    assert (status, text(error, "Error/Code")) == (400, "InvalidAction")
