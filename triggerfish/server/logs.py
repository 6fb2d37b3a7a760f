"""Reading and following an app's logs, and the endpoint serving them: `GET /-/api/v1/logs`.

Under `triggerfish serve` the same endpoint is `/-/api/v1/apps/{app}/logs`. The
lines are made from the invocation records (see log_lines.py), which live in a
log stream per function (`invocations.<function>`):

    GET /-/api/v1/logs?function=ship&since=10m&level=warning&limit=200
    -> {"lines": [{"time": "2026-12-01T10:00:00.123Z", "function": "ship", ...}], "truncated": false}
    GET /-/api/v1/logs?follow=1
    -> text/event-stream: `data: {line}` per line as invocations finish

Query: `function`, `request_id`, `level` (the lowest shown), `since` (`30s`, `10m`,
`2h`, `1d` or an RFC 3339 time), `limit` (the newest that many lines, default
1000), `follow=1`. A listing is the newest `limit` matching lines, oldest first;
`truncated` says older ones were left out.

Following starts from now (after the lines since `since`, when given) and
streams each attempt's lines once its record is stored. The stream opens with
the comment `: following`, sends `: heartbeat` every 15 seconds so proxies keep
the connection, and ends with `event: end` when the server stops, the app goes
away or the key that opened it is revoked (checked every second); a client that
disconnects ends it too. Each followed stream is read from the offset it had
when the follow began, with the log's waiting read, so a line arrives as soon
as its record is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from triggerfish._json import dumps
from triggerfish.errors import StoreClosedError
from triggerfish.names import RECORD_STREAM_PREFIX, record_stream
from triggerfish.runtime.records import InvocationRecords, decode_record
from triggerfish.server.control_io import ApiError, json_response, listed, platform_of
from triggerfish.server.keys import ApiKeys, presented_key
from triggerfish.server.log_lines import LEVELS, LogFilter, LogLine, level_name, since_time
from triggerfish.server.operations import Answer, Operation, inputs, query
from triggerfish.server.platform import Platform
from triggerfish.server.schema import Enum, Integer, Schema, Text
from triggerfish.store.base import EventLog

log = logging.getLogger("triggerfish.server")

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
#: Seconds between the comments that keep an idle event stream open through proxies.
HEARTBEAT_SECONDS = 15.0
#: How long one waiting read of a function's stream lasts before it is asked again.
_READ_WAIT = 5.0
#: How often following every function looks for functions invoked for the first time.
_DISCOVER_SECONDS = 1.0
#: How often an idle follow checks that its app is still served.
_CHECK_SECONDS = 1.0
_PAGE = 500
_MIN_PAGE = 100
_QUEUED_BATCHES = 16
_TRUE = ("1", "true", "yes")


class LogReader:
    """The lines of one app's invocation records: listed (`lines`) or followed (`follow`)."""

    def __init__(self, records: InvocationRecords) -> None:
        self.records = records
        self.log: EventLog = records.store.log

    async def streams(self, function: str | None) -> list[str]:
        if function is not None:
            return [record_stream(function)]
        return [s for s in await self.log.streams() if s.startswith(RECORD_STREAM_PREFIX)]

    async def lines(
        self, wanted: LogFilter, limit: int, *, upto: dict[str, int] | None = None
    ) -> tuple[list[LogLine], bool]:
        """The newest `limit` lines `wanted`, oldest first, and whether older ones were left out.

        `upto` bounds each stream's offsets (what a follow has not streamed yet is left out).
        """
        await self.records.settled()  # the records of sync invocations that just answered
        if wanted.request_id is not None and upto is None:
            # One invocation's attempts are one prefix scan; a follow's backlog reads the streams, which
            # `upto` can bound.
            found = [line for record in await self.records.attempts(wanted.request_id) for line in wanted.lines(record)]
        else:
            found = []
            for stream in await self.streams(wanted.function):
                # A stream that appeared after `upto` was taken is all new: the follow streams it whole.
                bound = None if upto is None else upto.get(stream, 0)
                found.extend(await self._newest(stream, wanted, limit, await self.log.last_offset(stream), bound))
        # Stable: the lines of one attempt keep their order, and attempts interleave by time as they ran.
        found.sort(key=lambda line: line.time)
        return found[-limit:], len(found) > limit

    async def _newest(self, stream: str, wanted: LogFilter, limit: int, last: int, upto: int | None) -> list[LogLine]:
        # Pages of records from the newest back, until `limit` lines are found or the records run out.
        end = last if upto is None else min(last, upto)
        pages: list[list[LogLine]] = []
        count = 0
        page = min(max(limit, _MIN_PAGE), _PAGE)
        while end > 0 and count <= limit:
            start = max(0, end - page)
            found = await self.log.read(stream, after=start, since=wanted.since, limit=end - start)
            inside = [raw for raw in found if raw.offset <= end]
            lines = [line for raw in inside for line in wanted.lines(decode_record(raw.data))]
            pages.append(lines)
            count += len(lines)
            if len(inside) < end - start:
                break  # the rest is older than `since`, or trimmed away
            end = start
        return [line for lines in reversed(pages) for line in lines]

    def follow(self, wanted: LogFilter, *, backlog: int) -> LogFollow:
        return LogFollow(self, wanted, backlog=backlog)


class LogFollow:
    """New lines as invocations finish. `open()` fixes "now"; iterate for batches of lines ([] when idle).

    Iteration ends when `end()` is called, or when the store closes (the app was stopped or removed).
    """

    def __init__(self, reader: LogReader, wanted: LogFilter, *, backlog: int) -> None:
        self.reader = reader
        self.wanted = wanted
        self.backlog_limit = backlog
        self.ended: str | None = None
        #: A machine-readable reason for the end, when the client should act on it (`Unauthorized`).
        self.ended_code: str | None = None
        self._offsets: dict[str, int] = {}
        # Bounded: a client that reads slowly holds the readers back (they resume from their offsets).
        self._queue: asyncio.Queue[list[LogLine] | None] = asyncio.Queue(maxsize=_QUEUED_BATCHES)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._discovery: asyncio.Task[None] | None = None

    async def open(self) -> list[LogLine]:
        """Fix where following starts (the streams' offsets now); returns the lines since `since`, if given."""
        await self.reader.records.settled()  # "now" includes the sync invocations that have answered
        for stream in await self.reader.streams(self.wanted.function):
            self._offsets[stream] = await self.reader.log.last_offset(stream)
        if self.wanted.since is None:
            return []
        lines, _ = await self.reader.lines(self.wanted, self.backlog_limit, upto=self._offsets)
        return lines

    async def next(self, within: float) -> list[LogLine] | None:
        """The next batch of new lines; [] when none came within `within` seconds; None once it ended."""
        self._start()
        try:
            async with asyncio.timeout(within):
                batch = await self._queue.get()
        except TimeoutError:
            return []
        return batch

    def end(self, reason: str, *, code: str | None = None) -> None:
        """Stop following: the iteration ends after the batches already read (the last one may be dropped)."""
        if self.ended is None:
            self.ended, self.ended_code = reason, code
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def close(self) -> None:
        tasks = [*self._tasks.values(), *([self._discovery] if self._discovery else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self) -> None:
        # Tasks start on first use, inside the response's iteration, so its `finally` always stops them.
        if self._tasks or self._discovery is not None:
            return
        for stream, offset in self._offsets.items():
            self._read(stream, offset)
        if self.wanted.function is None:
            self._discovery = asyncio.ensure_future(self._discover())
        elif not self._offsets:
            self._read(record_stream(self.wanted.function), 0)

    def _read(self, stream: str, after: int) -> None:
        self._tasks[stream] = asyncio.ensure_future(self._follow_stream(stream, after))

    async def _follow_stream(self, stream: str, after: int) -> None:
        try:
            while True:
                found = await self.reader.log.read(stream, after=after, limit=_PAGE, wait=_READ_WAIT)
                if not found:
                    continue
                after = found[-1].offset
                lines = [line for raw in found for line in self.wanted.lines(decode_record(raw.data))]
                if lines:
                    await self._queue.put(lines)
        except StoreClosedError:
            self.end("the app is no longer served here")
        except Exception:
            log.exception("following the log stream %s failed", stream)
            self.end("the server failed to read the logs; its log has the details")

    async def _discover(self) -> None:
        # A function invoked for the first time since the follow began gets a stream: read it from its start.
        try:
            while True:
                await asyncio.sleep(_DISCOVER_SECONDS)
                for stream in await self.reader.streams(None):
                    if stream not in self._tasks:
                        self._read(stream, 0)
        except StoreClosedError:
            self.end("the app is no longer served here")
        except Exception:
            log.exception("looking for new log streams failed")
            self.end("the server failed to read the logs; its log has the details")


class Follows:
    """The follows open on one server, so that stopping the server ends them rather than waiting on them."""

    def __init__(self) -> None:
        self._open: set[LogFollow] = set()
        self.closed = False

    @staticmethod
    def of(state: Any) -> Follows:
        """The registry kept on an ASGI app's `state` (made on first use)."""
        follows = getattr(state, "log_follows", None)
        if follows is None:
            follows = Follows()
            state.log_follows = follows
        assert isinstance(follows, Follows)
        return follows

    def add(self, follow: LogFollow) -> None:
        self._open.add(follow)
        if self.closed:
            follow.end("the server is stopping")

    def discard(self, follow: LogFollow) -> None:
        self._open.discard(follow)

    def close(self) -> None:
        """End every follow (the server is stopping); later ones end at once."""
        self.closed = True
        for follow in list(self._open):
            follow.end("the server is stopping")

    def __len__(self) -> int:
        return len(self._open)


def close_follows(state: Any) -> None:
    """End the log follows open on the ASGI app whose `state` this is: call it before stopping the server."""
    Follows.of(state).close()


# --- the endpoint ------------------------------------------------------------------------------


async def get_logs(request: Request) -> Response:
    platform = platform_of(request)
    params = inputs(request).query
    wanted = await _filter(platform, params)
    limit = params.get("limit", DEFAULT_LIMIT)
    reader = LogReader(platform.current.invoker.records)
    if params.get("follow", "0") not in _TRUE:
        lines, truncated = await reader.lines(wanted, limit)
        return json_response({"lines": [line.to_dict() for line in lines], "truncated": truncated})
    follow = reader.follow(wanted, backlog=limit)
    backlog = await follow.open()
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    events = _events(follow, backlog, Follows.of(request.app.state), platform, _key_check(request))
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


async def _events(
    follow: LogFollow,
    backlog: list[LogLine],
    follows: Follows,
    platform: Platform,
    key_valid: Callable[[], Awaitable[bool]] | None,
) -> AsyncIterator[bytes]:
    follows.add(follow)
    try:
        yield b": following\n\n" + b"".join(_event(line) for line in backlog)
        quiet_since = checked_at = time.monotonic()
        while True:
            batch = await follow.next(_CHECK_SECONDS)
            if batch is None:
                break
            if time.monotonic() - checked_at >= _CHECK_SECONDS:
                checked_at = time.monotonic()
                # A revoked key stops working at once, even for a stream it opened earlier.
                if key_valid is not None and not await key_valid():
                    follow.end("the API key that opened this stream was revoked", code="Unauthorized")
                    break
                if not _serving(platform):
                    follow.end("the app is no longer served here")
                    break
            if batch:
                yield b"".join(_event(line) for line in batch)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                yield b": heartbeat\n\n"
                quiet_since = time.monotonic()
        ending: dict[str, str] = {"reason": follow.ended or "the stream ended"}
        if follow.ended_code is not None:
            ending["code"] = follow.ended_code
        yield b"event: end\ndata: " + orjson.dumps(ending) + b"\n\n"
    finally:
        follows.discard(follow)
        await follow.close()


def _event(line: LogLine) -> bytes:
    # JSON never holds a raw newline, so one `data:` field carries the whole line.
    return b"data: " + dumps(line.to_dict()) + b"\n\n"


def _key_check(request: Request) -> Callable[[], Awaitable[bool]] | None:
    """Whether the key that opened a follow still works; None where there are no keys (`triggerfish dev`)."""
    keys: ApiKeys | None = getattr(request.app.state, "keys", None)
    text = presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if keys is None or text is None:
        return None

    async def valid() -> bool:
        return await keys.authenticate(text) is not None

    return valid


def _serving(platform: Platform) -> bool:
    try:
        platform.current  # noqa: B018 - raises once the platform stopped
    except RuntimeError:
        return False
    return True


async def _filter(platform: Platform, params: Mapping[str, Any]) -> LogFilter:
    function = params.get("function")
    if function is not None:
        await _known_function(platform, function)
    since = params.get("since")
    return LogFilter(
        function=function,
        request_id=params.get("request_id"),
        level=params.get("level", "DEBUG"),
        since=None if since is None else since_time(since, now=time.time()),
    )


async def _known_function(platform: Platform, function: str) -> None:
    """A function filter names a declared function, or one with records (from an earlier version)."""
    if function in platform.current.specs:
        return
    if record_stream(function) in await platform.current.invoker.records.store.log.streams():
        return
    raise ApiError(
        404,
        "FunctionNotFound",
        f"no function named {function!r} is declared or has logs; the app declares: {listed(platform.current.specs)}",
    )


class _Level(Schema):
    """A log level by name, in any case, with WARN and FATAL for WARNING and CRITICAL."""

    description = "The lowest level shown (default DEBUG): " + ", ".join(LEVELS) + ", in any case"

    def check(self, value: Any, where: str) -> Any:
        return level_name(value, where=where)

    def _schema(self) -> dict[str, Any]:
        return {"type": "string"}


class _Since(Schema):
    description = "30s, 10m, 2h or 1d ago, or an RFC 3339 time with a zone"

    def check(self, value: Any, where: str) -> Any:
        since_time(value, now=time.time(), where=where)  # refuses what it cannot read; read again per request
        return value

    def _schema(self) -> dict[str, Any]:
        return {"type": "string"}


OPERATION = Operation(
    "GET",
    "/logs",
    get_logs,
    "Log lines made from the invocation records: START, output, errors, END and REPORT",
    {
        200: Answer(
            "The newest matching lines, oldest first; with follow=1, an event stream",
            "LogLines",
            content={
                "text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": "`data: {LogLine}` per line; `: heartbeat` every 15 s;"
                        " `event: end` when the server stops or the key is revoked",
                    }
                }
            },
        )
    },
    "read",
    params=(
        query("function", "Only this function's lines", Text(min_length=1)),
        query(
            "request_id",
            "Only this invocation's lines",
            Text(min_length=1, pattern="[^/]+", hint="a request id (no '/')"),
        ),
        query("level", "The lowest level shown (default DEBUG)", _Level()),
        query("since", "30s, 10m, 2h, 1d ago, or an RFC 3339 time", _Since()),
        query("limit", "The newest this many lines (default 1000)", Integer(minimum=1, maximum=MAX_LIMIT)),
        query(
            "follow",
            "1: stream new lines as server-sent events",
            Enum(("0", "1", "true", "false", "yes", "no"), any_case=True),
        ),
    ),
    errors=(404,),
)
