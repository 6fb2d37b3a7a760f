"""The router of `/-/aws` with hand-made requests: what it answers when a request names nothing it serves."""

from __future__ import annotations

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.server.conftest import Served
from triggerfish.aws.endpoint import MAX_BODY_BYTES


async def _signed(served: Served, service: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    request = AWSRequest(method="POST", url=f"{served.url}/-/aws/", data=body, headers=headers)
    SigV4Auth(Credentials("test", "test"), service, "local").add_auth(request)
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(request.url, content=body, headers=dict(request.headers))


@pytest.mark.parametrize(
    ("service", "body", "headers", "status", "code", "message"),
    [
        ("sqs", b"{}", {"X-Amz-Target": "AmazonS3.GetObject"}, 400, "UnknownOperationException", "AmazonSQS"),
        (
            "sqs",
            b"{}",
            {"X-Amz-Target": "AmazonSQS.CancelMessageMoveTask"},
            400,
            "UnknownOperationException",
            "not served here",
        ),
        ("sqs", b"{not json", {"X-Amz-Target": "AmazonSQS.ListQueues"}, 400, "SerializationException", "not JSON"),
        ("sqs", b"[1]", {"X-Amz-Target": "AmazonSQS.ListQueues"}, 400, "SerializationException", "JSON object"),
        # S3 is served (docs/objects.md); a request without S3's payload hash header is refused in S3's XML
        ("s3", b"", {}, 400, "InvalidRequest", "x-amz-content-sha256"),
        ("events", b"{}", {"X-Amz-Target": "AWSEvents.PutEvents"}, 400, "ValidationException", "1 to 10 entries"),
    ],
)
async def test_requests_it_cannot_serve_are_answered_in_their_protocol(
    shop: Served, service: str, body: bytes, headers: dict[str, str], status: int, code: str, message: str
) -> None:
    answer = await _signed(shop, service, body, {"Content-Type": "application/x-amz-json-1.0", **headers})
    assert answer.status_code == status, answer.text
    if "X-Amz-Target" in headers:
        assert answer.json()["__type"] == code
        assert message in answer.json()["message"]
    else:
        assert f"<Code>{code}</Code>" in answer.text
        assert message in answer.text


async def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(shop: Served) -> None:
    headers = {"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"}
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(f"{shop.url}/-/aws/", content=b" " * (MAX_BODY_BYTES + 1), headers=headers)
    assert answer.status_code == 413
    assert answer.json()["__type"] == "RequestEntityTooLarge"
