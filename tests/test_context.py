"""The context a handler receives: Lambda's attributes and Triggerfish's publish/send/logger/trace."""

from __future__ import annotations

import base64
import logging
import re
import time
import uuid
from typing import Any

import pytest

from triggerfish.errors import InvalidEventError, InvocationError
from triggerfish.runtime.context import Context

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Platform:
    """Records what the context asks of the platform and answers like the parent would."""

    def __init__(self, answer: Any = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answer = answer

    def __call__(self, op: str, args: dict[str, Any]) -> Any:
        self.calls.append((op, args))
        return self.answer


def make(**overrides: Any) -> Context:
    values: dict[str, Any] = {
        "request_id": "8f7a-req",
        "function_name": "shop-create_order",  # as the runtime passes it: the Lambda name
        "function": "create_order",
        "deadline": time.time() + 3,
        "app_name": "shop",
    }
    values.update(overrides)
    return Context(**values)


def test_lambda_attributes_agree_with_each_other_and_have_lambda_s_types() -> None:
    context = make(function_version="7", memory_limit_in_mb=256)
    assert context.aws_request_id == context.request_id == "8f7a-req"
    # function_name, the ARN and the log group name one function, as on Lambda.
    assert context.function_name == "shop-create_order"
    assert context.invoked_function_arn == "arn:aws:lambda:local:000000000000:function:shop-create_order:7"
    assert context.log_group_name == "/aws/lambda/shop-create_order"
    assert context.function == "create_order"
    assert context.function_version == "7"
    assert context.memory_limit_in_mb == "256"  # a string, as Lambda's runtime gives it
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[7\]8f7a-req", context.log_stream_name)
    # Lambda's runtime: an identity object with None fields; a client context only from a mobile SDK caller.
    assert context.identity.cognito_identity_id is None
    assert context.identity.cognito_identity_pool_id is None
    assert context.client_context is None
    assert context.tenant_id is None
    assert make(log_stream_name="2026/12/06/[7]abc").log_stream_name == "2026/12/06/[7]abc"


def test_a_bare_context_names_what_it_was_given_everywhere() -> None:
    context = Context(request_id="r", function_name="orders", deadline=time.time() + 3)
    assert context.function == "orders"
    assert context.invoked_function_arn == "arn:aws:lambda:local:000000000000:function:orders:$LATEST"
    assert context.log_group_name == "/aws/lambda/orders"


def test_defaults_match_lambda() -> None:
    context = make()
    assert context.function_version == "$LATEST"
    assert context.memory_limit_in_mb == "128"
    assert context.attempt == 1
    assert context.hop_count == 0
    assert context.invoked_function_arn.endswith(":function:shop-create_order:$LATEST")


def test_remaining_time_counts_down_to_zero() -> None:
    context = make(deadline=time.time() + 2.0)
    first = context.get_remaining_time_in_millis()
    assert 1900 <= first <= 2000
    time.sleep(0.05)
    assert context.get_remaining_time_in_millis() < first
    assert make(deadline=time.time() - 5).get_remaining_time_in_millis() == 0


def test_logger_records_carry_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    context = make()
    with caplog.at_level(logging.INFO):
        context.logger.info("order %s accepted", "o-1")
    [record] = [r for r in caplog.records if "accepted" in r.getMessage()]
    assert record.aws_request_id == "8f7a-req"  # type: ignore[attr-defined]
    assert record.function_name == "create_order"  # type: ignore[attr-defined]
    assert record.getMessage() == "[8f7a-req] order o-1 accepted"


def test_logger_wraps_a_given_logger(caplog: pytest.LogCaptureFixture) -> None:
    mine = logging.getLogger("tests.context.mine")
    context = make(logger=mine)
    with caplog.at_level(logging.WARNING, logger="tests.context.mine"):
        context.logger.warning("careful")
    [record] = caplog.records
    assert record.name == "tests.context.mine"
    assert record.aws_request_id == "8f7a-req"  # type: ignore[attr-defined]


def test_trace_context_is_kept_when_valid() -> None:
    context = make(traceparent=TRACE)
    assert context.traceparent == TRACE
    assert context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 has no more fields
    ],
)
def test_missing_or_invalid_trace_context_starts_a_new_trace(bad: str | None) -> None:
    context = make(traceparent=bad)
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", context.traceparent)
    assert context.traceparent != bad
    assert context.traceparent == context.traceparent  # stable once made
    assert context.trace_id != "0" * 32


def test_publish_builds_a_cloudevent_that_continues_the_trace() -> None:
    platform = Platform()
    context = make(traceparent=TRACE, hop_count=2, call_platform=platform)
    event_id = context.publish("order.created", {"id": "o-1"}, subject="o-1", bus="orders", tenant="acme")
    [(op, args)] = platform.calls
    assert op == "publish"
    assert args["bus"] == "orders"
    event = args["event"]
    assert event["id"] == event_id
    uuid.UUID(event_id)
    assert event["specversion"] == "1.0"
    assert event["type"] == "order.created"
    assert event["source"] == "/shop/create_order"
    assert event["subject"] == "o-1"
    assert event["data"] == {"id": "o-1"}
    assert event["datacontenttype"] == "application/json"
    assert event["tenant"] == "acme"
    assert event["hopcount"] == 3
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", event["time"])
    version, trace_id, span, flags = event["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", context.trace_id, "01")
    assert span != TRACE.split("-")[2], "the event gets its own span in the same trace"


def test_publish_without_data_has_no_data_attributes() -> None:
    platform = Platform()
    make(call_platform=platform).publish("ping", source="/custom")
    event = platform.calls[0][1]["event"]
    assert "data" not in event
    assert "datacontenttype" not in event
    assert event["source"] == "/custom"


@pytest.mark.parametrize(
    ("kwargs", "attribute"),
    [
        ({"type": ""}, "type"),
        ({"type": "x", "source": ""}, "source"),
        ({"type": "x", "subject": ""}, "subject"),
        ({"type": "x", "Bad_Name": "v"}, "Bad_Name"),
        ({"type": "x", "waytoolongextensionname": "v"}, "waytoolongextensionname"),
        ({"type": "x", "traceparent": "00-x"}, "traceparent"),
        ({"type": "x", "hopcount": 0}, "hopcount"),
        ({"type": "x", "tags": ["a"]}, "tags"),
    ],
)
def test_publish_rejects_bad_attributes_before_calling_the_platform(kwargs: dict[str, Any], attribute: str) -> None:
    platform = Platform()
    context = make(call_platform=platform)
    with pytest.raises(InvalidEventError) as caught:
        context.publish(**kwargs)
    assert caught.value.attribute == attribute
    assert platform.calls == []


def test_send_encodes_each_kind_of_body() -> None:
    platform = Platform(answer={"message_id": "m-1"})
    context = make(hop_count=1, call_platform=platform)
    assert context.send("orders", "plain text", delay=2.5, group="g", dedup_id="d") == "m-1"
    assert context.send("orders", b"\x00\xff") == "m-1"
    assert context.send("orders", {"id": 1}, attributes={"kind": "json"}) == "m-1"
    text, raw, structured = (args for _, args in platform.calls)
    assert text["queue"] == "orders"
    assert (text["body"], text["delay"], text["group"], text["dedup_id"]) == ("plain text", 2.5, "g", "d")
    assert "body" not in raw
    assert base64.b64decode(raw["body_base64"]) == b"\x00\xff"
    assert structured["body"] == '{"id":1}'
    assert structured["attributes"] == {"kind": "json"}
    assert all(args["hop_count"] == 2 for _, args in platform.calls)
    assert all(args["traceparent"].split("-")[1] == context.trace_id for _, args in platform.calls)


def test_send_accepts_a_plain_message_id_answer() -> None:
    assert make(call_platform=Platform(answer="m-2")).send("q", "x") == "m-2"


def test_send_refuses_a_body_that_is_not_json() -> None:
    platform = Platform()
    with pytest.raises(InvocationError, match="not JSON-serialisable"):
        make(call_platform=platform).send("q", {1, 2})
    assert platform.calls == []


def test_without_a_platform_calls_say_how_to_get_one() -> None:
    context = make()
    with pytest.raises(InvocationError, match="no platform"):
        context.publish("x")
    with pytest.raises(InvocationError, match="no platform"):
        context.call_platform("kv_get", {"key": "k"})


def test_call_platform_passes_through() -> None:
    platform = Platform(answer={"value": 1})
    assert make(call_platform=platform).call_platform("kv_get", {"key": "k"}) == {"value": 1}
    assert platform.calls == [("kv_get", {"key": "k"})]


def test_repr_is_readable() -> None:
    assert "create_order" in repr(make())


def test_handler_code_may_attach_attributes_as_on_lambda() -> None:
    context = make()
    context.correlation_id = "c-1"  # type: ignore[attr-defined]
    assert context.correlation_id == "c-1"  # type: ignore[attr-defined]
