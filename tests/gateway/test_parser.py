"""Which HTTP/1.1 parser the server serves with, and that the fast one serves requests as the other does."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from triggerfish.gateway import GatewayServer
from triggerfish.gateway.request_body import BODY_RECEIVED
from triggerfish.gateway.server import PARSER_VARIABLE, http_parser, server_config


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = scope["path"].encode() + b" " + body
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def test_httptools_is_the_default_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PARSER_VARIABLE, raising=False)
    assert http_parser() == "httptools"
    assert server_config(echo).http == "httptools"


def test_the_variable_chooses_the_parser_and_a_wrong_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PARSER_VARIABLE, "h11")
    assert server_config(echo).http == "h11"
    monkeypatch.setenv(PARSER_VARIABLE, "picohttp")
    with pytest.raises(ValueError, match="TRIGGERFISH_HTTP='picohttp': use httptools or h11"):
        http_parser()
    with pytest.raises(ValueError, match="http='x': use httptools or h11"):
        server_config(echo, http="x")


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_pipelined_requests_are_answered_in_order_each_in_one_piece(parser: str) -> None:
    async with GatewayServer(echo, port=0, http=parser) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            # Three requests in one write: the second with a body; all answered, in the order sent.
            writer.write(
                b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n"
                b"POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                b"GET /three HTTP/1.1\r\nHost: t\r\n\r\n"
            )
            answers = b""
            async with asyncio.timeout(5):
                while answers.count(b"HTTP/1.1 200 ") < 3 or not answers.endswith(b"/three "):
                    chunk = await reader.read(65536)
                    assert chunk, f"closed early after {answers!r}"
                    answers += chunk
        finally:
            writer.close()
    bodies = [part.partition(b"\r\n\r\n")[2] for part in answers.split(b"HTTP/1.1 200 OK\r\n")[1:]]
    assert bodies == [b"/one ", b"/two hello", b"/three "]


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_a_malformed_request_is_answered_400_and_the_server_serves_on(parser: str) -> None:
    async with GatewayServer(echo, port=0, http=parser) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"GET /x HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
            async with asyncio.timeout(5):
                answer = await reader.read()
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 400 ")
        async with httpx.AsyncClient(base_url=server.url) as client:
            fine = await client.post("/y", content=b"z")
        assert (fine.status_code, fine.text) == (200, "/y z")


async def refuse_unread(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 413 at once without reading the body, and keeps the connection, as the control API's limits do."""
    if scope["type"] != "http":
        return
    status, answer = (413, b"too large") if scope["path"] == "/big" else (200, b"fine")
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_an_answer_sent_before_the_body_arrived_reaches_the_client_and_the_connection_serves_on(
    parser: str,
) -> None:
    # The rest of the body is not a request head: it must not count against the head's limit or timeout.
    async with (
        GatewayServer(refuse_unread, port=0, http=parser) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        refused = await client.post("/big", content=b"x" * (6 * 1024 * 1024))
        assert (refused.status_code, refused.text) == (413, "too large")
        again = await client.get("/small")
        assert (again.status_code, again.text) == (200, "fine")


async def test_httptools_marks_a_request_whose_whole_message_arrived_before_its_app_ran() -> None:
    # What lets the lean publish route read a body without a timer (request_body.body_within): set only when
    # the body is there, also for the pipelined request behind one still being answered.
    marks: list[tuple[str, object]] = []

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            marks.append((scope["path"], scope.get(BODY_RECEIVED)))
        await echo(scope, receive, send)

    async with GatewayServer(recording, port=0, http="httptools") as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(
                b"POST /whole HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                b"POST /piped HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok"
            )
            writer.write(b"POST /apart HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhe")
            answers = b""
            async with asyncio.timeout(5):
                while answers.count(b"HTTP/1.1 200 ") < 2:
                    answers += await reader.read(65536)
                await asyncio.sleep(0.1)  # the third request's app runs with its body still to come
                writer.write(b"llo")
                while answers.count(b"HTTP/1.1 200 ") < 3:
                    answers += await reader.read(65536)
        finally:
            writer.close()
    assert marks == [("/whole", True), ("/piped", True), ("/apart", None)]
    assert answers.endswith(b"/apart hello")
