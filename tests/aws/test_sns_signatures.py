"""SNS messages are signed as SNS signs them: a receiver verifying them the standard way accepts them.

The verification here is written from AWS's documentation ("Verifying the signatures of Amazon SNS
messages"), not with the platform's code: fetch the certificate from SigningCertURL, build the string
to sign from the message's fields, check the RSA signature with SHA1 (version 1) or SHA256 (version 2).
Powertools' parser models are the receivers ported handlers use.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.envelopes import SnsSqsEnvelope
from aws_lambda_powertools.utilities.parser.models import SnsModel
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel

from tests.aws.conftest import blocking, client
from tests.server.conftest import Served, serve_app

APP = """
import json
import triggerfish

app = triggerfish.App("mail")


@app.on_topic("parcels")
def on_parcel(event, context):
    context.send("lambda-events", json.dumps(event))


@app.on_queue("parcel-audit")
def audit(event, context):
    context.send("sqs-events", json.dumps(event))
"""

TOPIC = "arn:aws:sns:local:000000000000:parcels"


class Parcel(BaseModel):
    id: int


@pytest.fixture
async def mail(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve_app(tmp_path, APP):
        # What dev and serve set once the address is bound: the links point at this server.
        served.platform.environment["AWS_ENDPOINT_URL"] = f"{served.url}/-/aws"
        yield served


async def _one(served: Served, queue: str) -> Any:
    queues = served.platform.store.queues
    batch = await queues.receive(queue, max_messages=1, wait=20)
    assert batch, f"nothing arrived on {queue!r} within 20 s"
    await queues.ack(queue, batch[0].receipt)
    return json.loads(batch[0].body)


def verify_as_aws_documents(message: dict[str, Any], cert_field: str) -> bool:
    """The receiver's steps from AWS's documentation, with httpx and cryptography."""
    pem = httpx.get(message[cert_field], timeout=10).raise_for_status().content
    public_key = x509.load_pem_x509_certificate(pem).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    text = "".join(f"{name}\n{message[name]}\n" for name in names if message.get(name) is not None)
    digest: hashes.HashAlgorithm = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
    try:
        public_key.verify(base64.b64decode(message["Signature"]), text.encode(), padding.PKCS1v15(), digest)
    except Exception:
        return False
    return True


async def test_a_lambda_record_is_signed_and_powertools_parses_it(mail: Served) -> None:
    sns = client(mail.url, "sns")
    await blocking(sns.publish, TopicArn=TOPIC, Message='{"id": 7}', Subject="Shipped")
    event = await _one(mail, "lambda-events")
    record = event["Records"][0]["Sns"]
    assert record["SignatureVersion"] == "1"
    assert record["SigningCertUrl"].startswith(f"{mail.url}/-/aws/sns/mail/SimpleNotificationService-")
    assert await blocking(verify_as_aws_documents, record, "SigningCertUrl")
    # Any change to a signed field breaks the signature.
    assert not await blocking(verify_as_aws_documents, {**record, "Message": '{"id": 8}'}, "SigningCertUrl")

    parsed = parse(event=event, model=SnsModel)
    assert parsed.Records[0].Sns.Message == '{"id": 7}'
    assert str(parsed.Records[0].Sns.UnsubscribeUrl).startswith(f"{mail.url}/-/aws/sns/mail/unsubscribe?")


async def test_signature_version_2_reaches_a_queue_and_the_unsubscribe_url_works(mail: Served) -> None:
    sns = client(mail.url, "sns")
    arn = (await blocking(sns.create_topic, Name="notices", Attributes={"SignatureVersion": "2"}))["TopicArn"]
    subscribed = await blocking(
        sns.subscribe,
        TopicArn=arn,
        Protocol="sqs",
        Endpoint="arn:aws:sqs:local:000000000000:parcel-audit",
        ReturnSubscriptionArn=True,
    )
    await blocking(sns.publish, TopicArn=arn, Message='{"id": 9}')
    event = await _one(mail, "sqs-events")
    notification = json.loads(event["Records"][0]["body"])
    assert notification["SignatureVersion"] == "2"
    assert "Subject" not in notification
    assert await blocking(verify_as_aws_documents, notification, "SigningCertURL")
    [parcel] = SnsSqsEnvelope().parse(data=event, model=Parcel)
    assert parcel == Parcel(id=9)

    unsubscribe = notification["UnsubscribeURL"]
    async with httpx.AsyncClient(timeout=10) as http:
        forged = await http.get(unsubscribe.replace("Token=", "Token=0"))
        assert forged.status_code == 403
        assert b"AuthorizationError" in forged.content
        assert await mail.platform.topics.subscriptions("notices") != []
        followed = await http.get(unsubscribe)
        assert followed.status_code == 200
        assert b"<UnsubscribeResponse" in followed.content
        assert await mail.platform.topics.subscriptions("notices") == []
        assert (await http.get(unsubscribe)).status_code == 200  # as SNS: following it again succeeds
    listed = (await blocking(sns.list_subscriptions_by_topic, TopicArn=arn))["Subscriptions"]
    assert subscribed["SubscriptionArn"] not in [s["SubscriptionArn"] for s in listed]


async def test_one_key_per_app_kept_across_restarts(tmp_path: Path) -> None:
    certificates = []
    for _ in range(2):
        async for served in serve_app(tmp_path, APP):
            served.platform.environment["AWS_ENDPOINT_URL"] = f"{served.url}/-/aws"
            sns = client(served.url, "sns")
            await blocking(sns.publish, TopicArn=TOPIC, Message="x")
            record = (await _one(served, "lambda-events"))["Records"][0]["Sns"]
            async with httpx.AsyncClient(timeout=10) as http:
                certificates.append((await http.get(record["SigningCertUrl"])).content)
    assert certificates[0] == certificates[1]
    assert certificates[0].startswith(b"-----BEGIN CERTIFICATE-----")


def test_the_string_to_sign_is_snss() -> None:
    from triggerfish.aws.sns_signature import string_to_sign

    message = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:aws:sns:local:000000000000:t",
        "Message": "hi",
        "Timestamp": "2026-12-06T10:00:00.000Z",
        "SignatureVersion": "1",
    }
    assert string_to_sign(message) == (
        b"Message\nhi\nMessageId\nm-1\nTimestamp\n2026-12-06T10:00:00.000Z\nTopicArn\narn:aws:sns:local:000000000000:t\n"
        b"Type\nNotification\n"
    )
    # A Subject, when there is one, is signed between MessageId and Timestamp; a None one is left out.
    assert b"MessageId\nm-1\nSubject\nS\nTimestamp" in string_to_sign({**message, "Subject": "S"})
    assert string_to_sign({**message, "Subject": None}) == string_to_sign(message)


def test_a_bad_signature_version_is_refused_naming_the_choices() -> None:
    from triggerfish.aws.sns_signature import SigningKey
    from triggerfish.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="SignatureVersion must be '1'"):
        SigningKey.generate().sign({"Type": "Notification", "Message": "x"}, "3")
