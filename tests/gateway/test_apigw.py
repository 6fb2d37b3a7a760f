"""The payload 2.0 event built from a request, and the HTTP response built from a handler's result."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from triggerfish.gateway.apigw import (
    HttpRequest,
    MalformedResponseError,
    format_time,
    http_event,
    http_response,
    is_text,
    query_parameters,
)

NOW = 1583348638.39  # 04/Mar/2020:19:03:58 +0000


def request(**fields: Any) -> HttpRequest:
    values: dict[str, Any] = {
        "method": "GET",
        "raw_path": "/my/path",
        "path": "/my/path",
        "query_string": b"",
        "headers": [(b"host", b"api.example.com:8080"), (b"user-agent", b"curl/8.0")],
    }
    values.update(fields)
    return HttpRequest(**values)


def event_for(**fields: Any) -> dict[str, Any]:
    return http_event(request(**fields), "GET /my/{x}", {"x": "path"}, request_id="rid-1", now=NOW)


def test_the_event_has_api_gateways_payload_2_0_shape() -> None:
    event = event_for(query_string=b"a=1", source_ip="10.0.0.7")
    assert event == {
        "version": "2.0",
        "routeKey": "GET /my/{x}",
        "rawPath": "/my/path",
        "rawQueryString": "a=1",
        "headers": {"host": "api.example.com:8080", "user-agent": "curl/8.0"},
        "queryStringParameters": {"a": "1"},
        "pathParameters": {"x": "path"},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "triggerfish",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {
                "method": "GET",
                "path": "/my/path",
                "protocol": "HTTP/1.1",
                "sourceIp": "10.0.0.7",
                "userAgent": "curl/8.0",
            },
            "requestId": "rid-1",
            "routeKey": "GET /my/{x}",
            "stage": "$default",
            "time": "04/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1583348638390,
        },
        "isBase64Encoded": False,
    }
    # the event is sent to workers as JSON: it must survive the trip unchanged
    assert orjson.loads(orjson.dumps(event)) == event


def test_keys_that_would_be_empty_are_left_out_as_aws_does() -> None:
    event = http_event(request(), "GET /my/path", {}, request_id="r", now=NOW)
    for key in ("cookies", "queryStringParameters", "pathParameters", "body"):
        assert key not in event


def test_repeated_headers_are_joined_by_commas_and_names_lower_cased() -> None:
    event = event_for(headers=[(b"X-Tag", b"a"), (b"x-tag", b"b"), (b"Accept", b"text/html")])
    assert event["headers"] == {"x-tag": "a,b", "accept": "text/html"}


def test_cookies_move_from_the_header_to_the_cookies_list() -> None:
    event = event_for(headers=[(b"cookie", b"a=1; b=2"), (b"cookie", b"c=3")])
    assert event["cookies"] == ["a=1", "b=2", "c=3"]
    assert "cookie" not in event["headers"]


@pytest.mark.parametrize(
    ("raw", "parameters"),
    [
        ("a=1&a=2&b=x", {"a": "1,2", "b": "x"}),
        ("q=hello+world&e=%C3%A9", {"q": "hello world", "e": "é"}),
        ("flag&empty=", {"flag": "", "empty": ""}),
        ("k=%FF", {"k": "\ufffd"}),  # invalid UTF-8 is replaced, not fatal
        ("a=1&&b=2&", {"a": "1", "b": "2"}),
        ("x=a=b", {"x": "a=b"}),
        ("a%20b+c=d%2Be+f", {"a b c": "d+e f"}),  # keys are decoded as values are
        ("plain=value", {"plain": "value"}),  # nothing to decode: as sent
    ],
)
def test_query_parameters_are_decoded_and_repeated_keys_joined(raw: str, parameters: dict[str, str]) -> None:
    assert query_parameters(raw) == parameters


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("text/plain", True),
        ("text/csv", True),
        ("application/cloudevents+json", True),
        ("application/atom+xml", True),
        ("application/x-www-form-urlencoded", True),
        ("application/octet-stream", False),
        ("image/png", False),
        ("multipart/form-data; boundary=x", False),
        ("", False),
    ],
)
def test_text_content_types_are_passed_as_text(content_type: str, text: bool) -> None:
    assert is_text(content_type) is text


def test_a_text_body_is_passed_as_is_even_when_it_is_not_valid_json() -> None:
    body = b'{"broken": '
    event = event_for(headers=[(b"content-type", b"application/json")], body=body)
    assert event["body"] == '{"broken": '
    assert event["isBase64Encoded"] is False


def test_a_binary_body_is_base64_encoded() -> None:
    body = bytes(range(256))
    event = event_for(headers=[(b"content-type", b"application/octet-stream")], body=body)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_a_text_typed_body_that_is_not_utf8_is_base64_encoded_so_no_byte_is_lost() -> None:
    event = event_for(headers=[(b"content-type", b"text/plain")], body=b"caf\xe9")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"caf\xe9"


def test_time_uses_english_month_names_and_utc() -> None:
    assert format_time(0) == "01/Jan/1970:00:00:00 +0000"
    assert format_time(1607040000) == "04/Dec/2020:00:00:00 +0000"


# --- responses ---------------------------------------------------------------------------------


def headers_of(result: Any) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for name, value in http_response(result).headers:
        found.setdefault(name, []).append(value)
    return found


@pytest.mark.parametrize(
    ("result", "body"),
    [
        ({"ok": True}, b'{"ok":true}'),
        ([1, 2], b"[1,2]"),
        ("Hello from Lambda!", b"Hello from Lambda!"),  # a string is the body itself, not JSON-quoted
        (42, b"42"),
        (None, b"null"),
        ({"body": "x"}, b'{"body":"x"}'),  # without statusCode it is data, not a proxy response
    ],
)
def test_a_plain_value_becomes_a_200_json_response(result: Any, body: bytes) -> None:
    response = http_response(result)
    assert (response.status, response.body) == (200, body)
    assert response.headers == [(b"content-type", b"application/json")]


def test_the_proxy_form_sets_status_headers_cookies_and_body() -> None:
    result = {
        "statusCode": 201,
        "headers": {"Content-Type": "text/plain", "X-Id": "7"},
        "multiValueHeaders": {"X-Many": ["a", "b"]},
        "cookies": ["a=1; Secure", "b=2"],
        "body": "created",
    }
    response = http_response(result)
    assert (response.status, response.body) == (201, b"created")
    assert headers_of(result) == {
        b"content-type": [b"text/plain"],
        b"x-id": [b"7"],
        b"x-many": [b"a", b"b"],
        b"set-cookie": [b"a=1; Secure", b"b=2"],
    }


def test_a_base64_proxy_body_is_decoded() -> None:
    response = http_response(
        {"statusCode": 200, "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": True}
    )
    assert response.body == b"\x00\xff"


def test_a_proxy_response_without_body_is_empty_and_framing_headers_are_the_gateways() -> None:
    response = http_response({"statusCode": 204, "headers": {"Content-Length": "99", "Connection": "close"}})
    assert (response.status, response.body, response.headers) == (204, b"", [])


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        ({"statusCode": "200"}, "statusCode"),
        ({"statusCode": True}, "statusCode"),
        ({"statusCode": 99}, "statusCode"),
        ({"statusCode": 600}, "statusCode"),
        ({"statusCode": 200, "body": {"a": 1}}, "body must be a string"),
        ({"statusCode": 200, "headers": ["x"]}, "headers must be a dict"),
        ({"statusCode": 200, "headers": {"x": 1}}, "must be a string"),
        ({"statusCode": 200, "headers": {"bad name": "v"}}, "not a valid header name"),
        ({"statusCode": 200, "headers": {"x": "a\r\nSet-Cookie: evil=1"}}, "line break"),
        ({"statusCode": 200, "headers": {"x": "snow\u2603"}}, "cannot carry"),
        ({"statusCode": 200, "multiValueHeaders": {"x": "a"}}, "list of strings"),
        ({"statusCode": 200, "cookies": "a=1"}, "cookies must be a list"),
        ({"statusCode": 200, "cookies": [1]}, "must be a string"),
        ({"statusCode": 200, "body": "%%%", "isBase64Encoded": True}, "base64"),
    ],
)
def test_a_malformed_proxy_response_is_refused_with_the_reason(result: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedResponseError, match=reason):
        http_response(result)


def test_a_value_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedResponseError, match="not JSON"):
        http_response({1, 2})
