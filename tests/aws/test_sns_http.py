"""SNS's http(s) subscriptions as SNS runs them: a SubscriptionConfirmation first, deliveries once confirmed.

The receiver is a web server on a real socket written the way AWS's documentation tells an endpoint
to handle SNS ("Use Amazon SNS with HTTP/S endpoints"): it reads `x-amz-sns-message-type`, verifies
every message's signature from its `SigningCertURL` with the fields AWS lists per message type, and
confirms by visiting the `SubscribeURL` (or, in one test, by calling ConfirmSubscription with the Token).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.aws.conftest import blocking, client
from tests.server.conftest import Served, serve_app
from tests.threaded_server import serve_in_thread

APP = """
import triggerfish

app = triggerfish.App("alerts")


@app.on_topic("unused")
def unused(event, context):
    pass
"""

#: The fields AWS signs per message type, in its documented order.
SIGNED = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
}


def verified(message: dict[str, Any]) -> bool:
    pem = httpx.get(message["SigningCertURL"], timeout=10).raise_for_status().content
    public_key = x509.load_pem_x509_certificate(pem).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    text = "".join(f"{name}\n{message[name]}\n" for name in SIGNED[message["Type"]] if name in message)
    digest: hashes.HashAlgorithm = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
    try:
        public_key.verify(base64.b64decode(message["Signature"]), text.encode(), padding.PKCS1v15(), digest)
    except Exception:
        return False
    return True


@dataclass
class Receiver:
    url: str
    #: Confirm by visiting SubscribeURL as it arrives (False: keep the confirmation for the test to use).
    confirm: bool = True
    confirmations: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    unverified: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    async def sns(request: Request) -> Response:
        kind = request.headers.get("x-amz-sns-message-type")
        body = (await request.body()).decode()
        if request.headers.get("x-amz-sns-rawdelivery") == "true":
            state.raw.append(body)
            return Response(status_code=200)
        message = json.loads(body)
        assert message["Type"] == kind
        if not await asyncio.to_thread(verified, message):
            state.unverified.append(message)
            return Response(status_code=400)
        if kind == "SubscriptionConfirmation":
            state.confirmations.append(message)
            if state.confirm:
                async with httpx.AsyncClient(timeout=10) as http:
                    (await http.get(message["SubscribeURL"])).raise_for_status()
        else:
            state.notifications.append(message)
        return Response(status_code=200)

    with serve_in_thread(Starlette(routes=[Route("/sns", sns, methods=["POST"])])) as url:
        state.url = f"{url}/sns"
        yield state


@pytest.fixture
async def alerts(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve_app(tmp_path, APP):
        served.platform.environment["AWS_ENDPOINT_URL"] = f"{served.url}/-/aws"
        yield served


async def until(condition: Any, what: str) -> None:
    """Wait up to 20 s for `condition()` to hold, checking as the server runs (it shares this event loop)."""
    deadline = asyncio.get_running_loop().time() + 20.0
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"{what} did not happen within 20 s"
        await asyncio.sleep(0.02)


async def test_an_http_endpoint_confirms_and_then_gets_what_is_published(alerts: Served, receiver: Receiver) -> None:
    sns = client(alerts.url, "sns")
    topic = (await blocking(sns.create_topic, Name="outages"))["TopicArn"]
    receiver.confirm = False
    answer = await blocking(sns.subscribe, TopicArn=topic, Protocol="http", Endpoint=receiver.url)
    assert answer["SubscriptionArn"] == "pending confirmation"
    listed = (await blocking(sns.list_subscriptions_by_topic, TopicArn=topic))["Subscriptions"]
    assert [(s["SubscriptionArn"], s["Endpoint"]) for s in listed] == [("PendingConfirmation", receiver.url)]
    await until(lambda: receiver.confirmations, "the SubscriptionConfirmation")
    [confirmation] = receiver.confirmations
    assert confirmation["TopicArn"] == topic
    assert confirmation["Token"]
    assert confirmation["SubscribeURL"].startswith(f"{alerts.url}/-/aws/sns/alerts/")
    assert "To confirm the subscription, visit the SubscribeURL" in confirmation["Message"]

    # Published while pending: never delivered (SNS holds nothing for an unconfirmed endpoint).
    await blocking(sns.publish, TopicArn=topic, Message="before")
    async with httpx.AsyncClient(timeout=10) as http:
        forged = await http.get(confirmation["SubscribeURL"].replace("Token=", "Token=0"))
        assert forged.status_code == 400
        assert b"Invalid token" in forged.content
        confirmed = await http.get(confirmation["SubscribeURL"])
    assert confirmed.status_code == 200
    assert b"<ConfirmSubscriptionResponse" in confirmed.content
    [subscription] = (await blocking(sns.list_subscriptions_by_topic, TopicArn=topic))["Subscriptions"]
    assert subscription["SubscriptionArn"].startswith(topic + ":")
    assert subscription["SubscriptionArn"].encode() in confirmed.content

    await blocking(sns.publish, TopicArn=topic, Message="after", Subject="Outage")
    await until(lambda: receiver.notifications, "the notification")
    assert [n["Message"] for n in receiver.notifications] == ["after"]
    assert receiver.notifications[0]["Subject"] == "Outage"
    assert receiver.notifications[0]["UnsubscribeURL"].startswith(f"{alerts.url}/-/aws/sns/alerts/unsubscribe?")
    assert receiver.unverified == []
    attributes = (await blocking(sns.get_subscription_attributes, SubscriptionArn=subscription["SubscriptionArn"]))[
        "Attributes"
    ]
    assert attributes["PendingConfirmation"] == "false"
    assert attributes["Protocol"] == "http"
    assert attributes["Endpoint"] == receiver.url


async def test_confirm_subscription_takes_the_token_and_refuses_others(alerts: Served, receiver: Receiver) -> None:
    sns = client(alerts.url, "sns")
    topic = (await blocking(sns.create_topic, Name="pages"))["TopicArn"]
    receiver.confirm = False
    arn = (
        await blocking(
            sns.subscribe, TopicArn=topic, Protocol="http", Endpoint=receiver.url, ReturnSubscriptionArn=True
        )
    )["SubscriptionArn"]
    assert arn.startswith(topic + ":")
    pending = (await blocking(sns.get_subscription_attributes, SubscriptionArn=arn))["Attributes"]
    assert pending["PendingConfirmation"] == "true"
    counts = (await blocking(sns.get_topic_attributes, TopicArn=topic))["Attributes"]
    assert (counts["SubscriptionsPending"], counts["SubscriptionsConfirmed"]) == ("1", "0")
    await until(lambda: receiver.confirmations, "the SubscriptionConfirmation")

    with pytest.raises(ClientError) as refused:
        await blocking(sns.confirm_subscription, TopicArn=topic, Token="not-the-token")
    assert refused.value.response["Error"]["Code"] == "InvalidParameter"
    token = receiver.confirmations[0]["Token"]
    assert (await blocking(sns.confirm_subscription, TopicArn=topic, Token=token))["SubscriptionArn"] == arn
    # Again: the same answer, nothing changes (a receiver may confirm twice).
    assert (await blocking(sns.confirm_subscription, TopicArn=topic, Token=token))["SubscriptionArn"] == arn
    counts = (await blocking(sns.get_topic_attributes, TopicArn=topic))["Attributes"]
    assert (counts["SubscriptionsPending"], counts["SubscriptionsConfirmed"]) == ("0", "1")

    # Subscribing the confirmed endpoint again changes nothing: the subscription's ARN, no "pending".
    again = await blocking(sns.subscribe, TopicArn=topic, Protocol="http", Endpoint=receiver.url)
    assert again["SubscriptionArn"] == arn
    # A token is for its own topic only.
    other = (await blocking(sns.create_topic, Name="other"))["TopicArn"]
    with pytest.raises(ClientError):
        await blocking(sns.confirm_subscription, TopicArn=other, Token=token)


async def test_subscription_attributes_change_what_the_endpoint_gets(alerts: Served, receiver: Receiver) -> None:
    sns = client(alerts.url, "sns")
    topic = (await blocking(sns.create_topic, Name="metrics"))["TopicArn"]
    await blocking(sns.set_topic_attributes, TopicArn=topic, AttributeName="SignatureVersion", AttributeValue="2")
    await blocking(sns.subscribe, TopicArn=topic, Protocol="http", Endpoint=receiver.url)
    registry = alerts.platform.topics.registry
    await until(lambda: len(receiver.confirmations) == 1 and registry.of("metrics"), "the subscription")
    assert receiver.confirmations[0]["SignatureVersion"] == "2"
    [subscription] = registry.of("metrics")
    arn = subscription.arn
    await until(lambda: (found := registry.get(arn)) is not None and not found.pending, "the confirmation to be taken")

    policy = json.dumps({"severity": ["high"]})
    await blocking(
        sns.set_subscription_attributes, SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue=policy
    )
    await blocking(
        sns.set_subscription_attributes, SubscriptionArn=arn, AttributeName="RawMessageDelivery", AttributeValue="true"
    )
    attributes = (await blocking(sns.get_subscription_attributes, SubscriptionArn=arn))["Attributes"]
    assert json.loads(attributes["FilterPolicy"]) == {"severity": ["high"]}
    assert attributes["RawMessageDelivery"] == "true"

    high = {"severity": {"DataType": "String", "StringValue": "high"}}
    low = {"severity": {"DataType": "String", "StringValue": "low"}}
    await blocking(sns.publish, TopicArn=topic, Message="disk at 91%", MessageAttributes=low)
    await blocking(sns.publish, TopicArn=topic, Message="disk at 99%", MessageAttributes=high)
    await until(lambda: receiver.raw, "the raw delivery")
    assert receiver.raw == ["disk at 99%"]
    assert receiver.notifications == []

    for name, value, says in [
        ("DeliveryPolicy", "{}", "AttributeName"),
        ("RawMessageDelivery", "yes", "RawMessageDelivery"),
        ("FilterPolicy", "{not json", "not JSON"),
        ("FilterPolicy", '{"severity": "high"}', "severity"),
    ]:
        with pytest.raises(ClientError) as refused:
            await blocking(
                sns.set_subscription_attributes, SubscriptionArn=arn, AttributeName=name, AttributeValue=value
            )
        assert refused.value.response["Error"]["Code"] == "InvalidParameter"
        assert says in refused.value.response["Error"]["Message"]
    # A refused change left the subscription as it was.
    assert (await blocking(sns.get_subscription_attributes, SubscriptionArn=arn))["Attributes"] == attributes
    with pytest.raises(ClientError) as missing:
        await blocking(sns.get_subscription_attributes, SubscriptionArn=topic + ":no-such-id")
    assert missing.value.response["Error"]["Code"] == "NotFound"
