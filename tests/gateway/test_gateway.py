"""The gateway served by uvicorn on a real socket: requests from httpx (and raw sockets for hostile clients),
functions run through the real Invoker on a SQLite store, in-process and in worker processes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.apps import web
from triggerfish.errors import HandlerError, InvalidInputError, StoreFullError, StoreUnavailableError
from triggerfish.gateway import Gateway, GatewayServer, RouteTable, serve_gateway
from triggerfish.gateway.connections import ConnectionLimits
from triggerfish.gateway.server import PARSER_VARIABLE
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.runtime.types import Runner
from triggerfish.store import Store, open_store

WEB_APP = Path(web.__file__)
ROUTES = RouteTable.from_specs(web.app.functions)

Serve = Callable[..., contextlib.AbstractAsyncContextManager["Served"]]


class Served:
    def __init__(self, server: GatewayServer, client: httpx.AsyncClient, invoker: Invoker) -> None:
        self.server = server
        self.client = client
        self.invoker = invoker

    async def raw(self, data: bytes, *, read_for: float = 5.0) -> bytes:
        """Send `data` on a fresh connection and read what comes back until the server closes or `read_for` ends."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        try:
            writer.write(data)
            await writer.drain()
            return await read_response(reader, read_for)
        finally:
            writer.close()


async def read_response(reader: asyncio.StreamReader, seconds: float) -> bytes:
    received = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(65536):
                received += chunk
                if b"\r\n\r\n" in received and _complete(received):
                    break
    return received


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


@pytest.fixture(params=["httptools", "h11"])
def both_parsers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test runs on each parser the server can serve with (triggerfish.gateway.server.http_parser)."""
    monkeypatch.setenv(PARSER_VARIABLE, request.param)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path}/gateway.db")
    yield store
    await store.close()


@pytest.fixture
def serve(store: Store) -> Serve:
    @contextlib.asynccontextmanager
    async def serve(runner: Runner | None = None, **settings: Any) -> AsyncIterator[Served]:
        server_settings: dict[str, Any] = {}
        if "limits" in settings:
            server_settings["limits"] = settings.pop("limits")
        if "max_header_bytes" in settings:
            server_settings["max_header_bytes"] = settings["max_header_bytes"]
        invoker = Invoker(runner or InProcessRunner(web.app.functions), store)
        gateway = Gateway(ROUTES, invoker.invoke, **settings)
        async with (
            GatewayServer(gateway, port=0, **server_settings) as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            yield Served(server, client, invoker)

    return serve


# --- the event the handler sees --------------------------------------------------------------


async def test_the_handler_receives_path_query_headers_and_cookies_as_payload_2_0(serve: Serve) -> None:
    async with serve() as s:
        response = await s.client.get(
            "/echo/a/b%2Fc",
            params=[("tag", "x"), ("tag", "y"), ("q", "hello world")],
            headers={"X-Custom": "1", "Cookie": "session=abc; theme=dark"},
        )
    assert response.status_code == 200
    event = response.json()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /echo/{proxy+}"
    assert event["rawPath"] == "/echo/a/b%2Fc"
    assert event["pathParameters"] == {"proxy": "a/b/c"}
    assert event["queryStringParameters"] == {"tag": "x,y", "q": "hello world"}
    assert event["headers"]["x-custom"] == "1"
    assert event["cookies"] == ["session=abc", "theme=dark"]
    context = event["requestContext"]
    assert context["http"]["method"] == "GET"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["requestId"] == response.headers["x-triggerfish-request-id"] == response.headers["apigw-requestid"]


async def test_invalid_json_is_passed_through_to_the_handler_as_text(serve: Serve) -> None:
    async with serve() as s:
        response = await s.client.post("/echo/x", content=b'{"not": json', headers={"content-type": "application/json"})
    assert response.json()["body"] == '{"not": json'
    assert response.json()["isBase64Encoded"] is False


async def test_a_binary_body_reaches_the_handler_base64_encoded(serve: Serve) -> None:
    payload = bytes(range(256)) * 4
    async with serve() as s:
        response = await s.client.put("/echo/blob", content=payload, headers={"content-type": "image/png"})
    event = response.json()
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


async def test_invalid_utf8_in_path_and_query_is_replaced_not_fatal(serve: Serve) -> None:
    async with serve() as s:
        response = await s.client.get("/echo/%FF%FE?q=%C3%28")
    assert response.status_code == 200
    event = response.json()
    assert event["pathParameters"] == {"proxy": "\ufffd\ufffd"}
    assert event["queryStringParameters"] == {"q": "\ufffd("}
    assert event["rawPath"] == "/echo/%FF%FE"


# --- responses ---------------------------------------------------------------------------------


async def test_a_proxy_response_sets_status_headers_and_one_set_cookie_per_cookie(serve: Serve) -> None:
    async with serve() as s:
        response = await s.client.post("/items", json={"id": 9, "name": "pen"})
    assert response.status_code == 201
    assert response.headers["location"] == "/items/9"
    assert response.headers.get_list("set-cookie") == ["session=abc; HttpOnly", "theme=dark"]
    assert response.json() == {"id": 9, "name": "pen"}


async def test_plain_return_values_become_200_json_responses(serve: Serve) -> None:
    async with serve() as s:
        item = await s.client.get("/items/7")
        text = await s.client.get("/hello")
    assert (item.status_code, item.json()) == (200, {"id": "7"})
    assert (text.status_code, text.text, text.headers["content-type"]) == (200, "hello, world", "application/json")


async def test_a_base64_proxy_body_is_sent_as_bytes(serve: Serve) -> None:
    async with serve() as s:
        response = await s.client.get("/pixel")
    assert response.headers["content-type"] == "image/gif"
    assert response.content == b"GIF89a\x01\x00\x01\x00\x00\xff"


# --- errors ------------------------------------------------------------------------------------


def assert_error(response: httpx.Response, status: int, message: str) -> str:
    assert response.status_code == status
    request_id = response.headers["x-triggerfish-request-id"]
    assert response.json() == {"message": message, "requestId": request_id}
    assert response.headers["apigw-requestid"] == request_id
    return request_id


async def test_a_handler_error_is_500_with_the_request_id_and_no_trace(serve: Serve) -> None:
    async with serve() as s:
        response = await s.client.get("/fail")
        request_id = assert_error(response, 500, "Internal Server Error")
        assert "secret" not in response.text
        assert "Traceback" not in response.text
        # the details are kept where an operator finds them, under the same request id
        record = await s.invoker.records.get(request_id)
    assert record is not None
    assert record.trigger == "http"
    assert record.error is not None
    assert "secret detail" in record.error["errorMessage"]


async def test_a_malformed_proxy_response_is_502(serve: Serve) -> None:
    async with serve() as s:
        assert_error(await s.client.get("/malformed"), 502, "Bad Gateway")


async def test_a_function_timeout_is_504(serve: Serve) -> None:
    async with serve() as s:
        assert_error(await s.client.get("/slow"), 504, "Gateway Timeout")


async def test_throttling_is_429_with_retry_after(serve: Serve) -> None:
    async with serve(invoke_wait=0.05, throttle_retry_after=3) as s:
        responses = await asyncio.gather(*(s.client.get("/busy") for _ in range(3)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 429, 429]
    throttled = [r for r in responses if r.status_code == 429]
    assert all(r.headers["retry-after"] == "3" for r in throttled)
    assert_error(throttled[0], 429, "Too Many Requests")


async def test_unknown_routes_are_404_and_wrong_methods_405_with_allow(serve: Serve) -> None:
    async with serve() as s:
        assert_error(await s.client.get("/nowhere"), 404, "Not Found")
        wrong = await s.client.delete("/items/7")
        assert_error(wrong, 405, "Method Not Allowed")
        assert wrong.headers["allow"] == "GET"
        # the platform's prefix is never the gateway's, whatever the routes
        assert_error(await s.client.get("/-/health"), 404, "Not Found")


# --- limits and hostile clients ------------------------------------------------------------


async def test_a_body_over_the_limit_by_content_length_is_413_before_it_is_sent(serve: Serve) -> None:
    async with serve() as s:
        # 7 MB declared, not one byte of it sent: the answer cannot depend on buffering it
        head = b"POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 7000000\r\n\r\n"
        answer = await s.raw(head)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"message":"Request Entity Too Large"' in answer


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_a_chunked_body_over_the_limit_is_413_as_soon_as_it_passes(serve: Serve) -> None:
    async with serve(max_body=1024) as s:
        chunk = b"x" * 600
        head = b"POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        # two chunks pass the limit; the terminating chunk is never sent
        frames = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2))
        answer = await s.raw(head + frames)
        assert answer.startswith(b"HTTP/1.1 413 ")
        # a body under the limit, chunked, still arrives whole
        small = await s.client.post(
            "/echo/x", content=chunks(b"a" * 500, b"b" * 500), headers={"content-type": "text/plain"}
        )
    assert small.json()["body"] == "a" * 500 + "b" * 500


async def test_a_body_that_stops_arriving_gets_408(serve: Serve) -> None:
    async with serve(body_timeout=0.3) as s:
        head = b"POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly part"
        answer = await s.raw(head, read_for=5)
    assert answer.startswith(b"HTTP/1.1 408 ")


@pytest.mark.usefixtures("both_parsers")
async def test_a_head_still_arriving_past_the_limit_is_refused_by_the_server(serve: Serve) -> None:
    async with serve(max_header_bytes=4096) as s:
        # no blank line: the head is incomplete, and the server stops buffering it at the limit
        answer = await s.raw(b"GET /echo/x HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 8000)
        assert answer.startswith(b"HTTP/1.1 400 ")
        # the server is unharmed
        assert (await s.client.get("/hello")).status_code == 200


@pytest.mark.usefixtures("both_parsers")
async def test_headers_over_the_limit_that_arrive_whole_are_431(serve: Serve) -> None:
    async with serve(max_header_bytes=4096) as s:
        big = await s.client.get("/echo/x", headers={"x-big": "a" * 5000})
        assert_error(big, 431, "Request Header Fields Too Large")
        assert (await s.client.get("/echo/x", headers={"x-fine": "a" * 3000})).status_code == 200


@pytest.mark.usefixtures("both_parsers")
async def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(serve: Serve) -> None:
    async with serve(limits=ConnectionLimits(keep_alive_timeout=1)) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.server.port)
        try:
            writer.write(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            first = await read_response(reader, 5)
            assert first.startswith(b"HTTP/1.1 200 ")
            async with asyncio.timeout(5):
                closed = await reader.read(1)  # blocks until the server closes the idle connection
        finally:
            writer.close()
    assert closed == b""


@pytest.mark.usefixtures("both_parsers")
async def test_headers_over_the_limit_are_431_whatever_else_is_wrong_with_them(serve: Serve) -> None:
    # The head's size is judged first (as before the checks were read in one pass), then its body's length.
    async with serve(max_header_bytes=4096, max_body=10) as s:
        big = b"X-Big: " + b"a" * 5000 + b"\r\n"
        too_long = await s.raw(b"POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n" + big + b"\r\n")
        assert too_long.startswith(b"HTTP/1.1 431 ")
        within = await s.raw(b"POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n")
        assert within.startswith(b"HTTP/1.1 413 ")


async def test_a_bad_content_length_is_400(serve: Serve) -> None:
    async with serve() as s:
        answer = await s.raw(b"POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_a_client_that_leaves_mid_body_harms_nothing(serve: Serve) -> None:
    async with serve() as s:
        _reader, writer = await asyncio.open_connection("127.0.0.1", s.server.port)
        writer.write(b"POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nhalf")
        await writer.drain()
        writer.close()
        await asyncio.sleep(0.1)
        assert (await s.client.get("/hello")).text == "hello, world"
        # no invocation ran for the abandoned request: only /hello's record exists
        records = await s.invoker.records.query()
    assert [r.function for r in records] == ["hello"]


@pytest.mark.parametrize(
    "settings",
    [
        {"max_body": -1},
        {"body_timeout": "30"},
        {"invoke_wait": 1000},
        {"throttle_retry_after": 1.5},
        {"max_header_bytes": 0},
    ],
)
def test_bad_gateway_settings_are_refused_naming_the_setting(settings: dict[str, Any]) -> None:
    name = next(iter(settings))
    with pytest.raises(InvalidInputError, match=name):
        Gateway(ROUTES, Invoker(InProcessRunner(web.app.functions), None).invoke, **settings)  # type: ignore[arg-type]


async def test_serve_gateway_serves_until_cancelled(store: Store) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = Gateway(ROUTES, Invoker(InProcessRunner(web.app.functions), store).invoke)
    serving = asyncio.create_task(serve_gateway(gateway, "127.0.0.1", port))
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            with contextlib.suppress(httpx.ConnectError):
                response = await client.get(f"http://127.0.0.1:{port}/hello")
                break
            await asyncio.sleep(0.05)
        assert response.text == "hello, world"
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/hello")


# --- the production path: worker processes -----------------------------------------------------


async def test_requests_run_in_worker_processes_through_the_process_runner(serve: Serve, tmp_path: Path) -> None:
    runner = await ProcessRunner.start(str(WEB_APP), work_dir=tmp_path / "work")
    try:
        async with serve(runner) as s:
            created = await s.client.post("/items", json={"id": 3})
            echoed = await s.client.get("/echo/deep/path", params={"a": "1"})
            failed = await s.client.get("/fail")
            timed_out = await s.client.get("/slow")
    finally:
        await runner.close()
    assert created.status_code == 201
    assert created.headers.get_list("set-cookie") == ["session=abc; HttpOnly", "theme=dark"]
    assert echoed.json()["pathParameters"] == {"proxy": "deep/path"}
    assert json.loads(created.text) == {"id": 3}
    assert_error(failed, 500, "Internal Server Error")
    assert_error(timed_out, 504, "Gateway Timeout")


# --- a store that cannot write ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status", "message"),
    [
        (StoreFullError("the store is full"), 507, "Insufficient Storage"),
        (StoreUnavailableError("the database is restarting", retry_after=2), 503, "Service Unavailable"),
    ],
)
async def test_a_route_whose_handler_the_store_failed_says_so_rather_than_500(
    failure: Exception, status: int, message: str
) -> None:
    async def invoke(function: str, event: Any = None, **_: Any) -> Any:
        # What a handler that did not catch its failed `context.send` ends as: its error type is the store's.
        raise HandlerError({"errorType": type(failure).__name__, "errorMessage": str(failure), "stackTrace": []})

    async def invoke_directly(function: str, event: Any = None, **_: Any) -> Any:
        raise failure  # the platform's own write on the way (a throttled attempt's record)

    for call in (invoke, invoke_directly):
        gateway = Gateway(ROUTES, call)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://t") as client:
            answer = await client.get("/hello")
        assert_error(answer, status, message)
        if status == 503:
            assert answer.headers["retry-after"] == "1"
