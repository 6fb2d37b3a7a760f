"""Signed webhooks: signing and verifying, delivery to a real local HTTP server, and a receiver that is down."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.http_receiver import HttpReceiver
from triggerfish.bus.bus import EventBus
from triggerfish.bus.delivery import dead_letter
from triggerfish.bus.rules import Rules
from triggerfish.bus.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, sign, verify
from triggerfish.events.cloudevent import Event
from triggerfish.store import Store

SECRET = "whsec-test"
FAST = {"max_attempts": 3, "backoff": {"base": 0.0, "ceiling": 0.0}}


class Receiver(HttpReceiver):
    """Verifies what it receives and answers `status`."""

    path = "/hook"

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.refused: list[str] = []
        self.status = 200
        super().__init__()

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        try:
            verify(SECRET, headers, body)
        except SignatureError as exc:
            self.refused.append(str(exc))
            return 401
        self.received.append((headers, body))
        return self.status


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- signing, pure ---------------------------------------------------------------------------


def test_a_signed_body_verifies() -> None:
    headers = sign(SECRET, b'{"a":1}', timestamp=1_700_000_000)
    assert headers[SIGNATURE_HEADER].startswith("v1=")
    assert verify(SECRET, headers, b'{"a":1}', now=1_700_000_100) == 1_700_000_000


def test_header_names_are_matched_without_case() -> None:
    headers = {k.upper(): v for k, v in sign(SECRET, b"x", timestamp=100).items()}
    assert verify(SECRET, headers, b"x", now=100) == 100


def test_one_of_several_signatures_may_match_while_a_secret_rotates() -> None:
    old, new = sign("old", b"x", timestamp=100), sign(SECRET, b"x", timestamp=100)
    headers = {TIMESTAMP_HEADER: "100", SIGNATURE_HEADER: f"{old[SIGNATURE_HEADER]}, {new[SIGNATURE_HEADER]}"}
    assert verify(SECRET, headers, b"x", now=100) == 100


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": b'{"a":2}'}, "no v1 signature"),
        ({"secret": "other"}, "no v1 signature"),
        ({"now": 1_700_000_301}, "tolerance"),
        ({"now": 1_699_999_000}, "tolerance"),
        ({"drop": SIGNATURE_HEADER}, "headers are required"),
        ({"drop": TIMESTAMP_HEADER}, "headers are required"),
        ({"set": (TIMESTAMP_HEADER, "17e8")}, "whole seconds"),
        ({"set": (TIMESTAMP_HEADER, "1700000001")}, "no v1 signature"),
        ({"set": (SIGNATURE_HEADER, "v0=abc")}, "no v1 signature"),
        ({"set": (SIGNATURE_HEADER, "v1=\u00e9\u00e9")}, "no v1 signature"),
    ],
)
def test_tampered_old_or_unsigned_requests_are_refused(change: dict[str, Any], message: str) -> None:
    headers = sign(SECRET, b'{"a":1}', timestamp=1_700_000_000)
    if "drop" in change:
        del headers[change["drop"]]
    if "set" in change:
        name, value = change["set"]
        headers[name] = value
    with pytest.raises(SignatureError, match=message):
        verify(
            change.get("secret", SECRET),
            headers,
            change.get("body", b'{"a":1}'),
            now=change.get("now", 1_700_000_000),
        )


# --- delivery over real sockets --------------------------------------------------------------


async def test_a_webhook_target_receives_the_signed_event(store: Store, receiver: Receiver) -> None:
    rules = Rules(store)
    target = {"id": "hook", "kind": "webhook", "name": receiver.url, "secret": SECRET}
    await rules.put({"id": "to-hook", "pattern": {"type": ["order.placed"]}, "targets": [target]})
    bus = EventBus(store, rules)
    try:
        [event_id] = await bus.publish("default", [Event.create("order.placed", "shop", {"total": 5})])
        await bus.publish("default", [Event.create("order.cancelled", "shop", {"total": 5})])
        await bus.drain()
    finally:
        await bus.stop()
    assert receiver.refused == []
    [(headers, body)] = receiver.received
    assert orjson.loads(body)["id"] == event_id
    # The CloudEvent itself: the HTTP binding's structured mode, which names its own media type.
    assert headers["content-type"] == "application/cloudevents+json"


async def test_a_webhook_that_is_down_is_retried_then_dead_lettered(store: Store) -> None:
    rules = Rules(store)
    url = f"http://127.0.0.1:{closed_port()}/hook"
    target = {"id": "hook", "kind": "webhook", "name": url, "secret": SECRET, "retry": FAST, "dead_letter": "hook-dlq"}
    await rules.put({"id": "to-hook", "pattern": {"source": ["shop"]}, "targets": [target]})
    bus = EventBus(store, rules)
    try:
        [event_id] = await bus.publish("default", [Event.create("order.placed", "shop")])
        await bus.drain()
    finally:
        await bus.stop()
    [message] = await store.queues.receive("hook-dlq", max_messages=10)
    record = dead_letter(message)
    assert record["event"]["id"] == event_id
    assert record["attempts"] == 3
    assert record["condition"] == "RetriesExhausted"
    assert "ConnectError" in record["error"]
    assert message.attributes["RETRY_ATTEMPTS"] == "3"
    assert (await store.queues.stats("deliver.default")).depth == 0


async def test_a_client_error_is_not_retried(store: Store, receiver: Receiver) -> None:
    receiver.status = 410
    rules = Rules(store)
    target = {"id": "hook", "kind": "webhook", "name": receiver.url, "secret": SECRET, "retry": FAST}
    await rules.put({"id": "to-hook", "pattern": {"source": ["shop"]}, "targets": [target]})
    bus = EventBus(store, rules)
    try:
        await bus.publish("default", [Event.create("order.placed", "shop")])
        await bus.drain()
    finally:
        await bus.stop()
    assert len(receiver.received) == 1
    [message] = await store.queues.receive("deliver.default.dead-letter")
    assert dead_letter(message)["condition"] == "NonRetryable"
    assert "HTTP 410" in dead_letter(message)["error"]
