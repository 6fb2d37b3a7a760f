"""The frame protocol: every message round-trips; garbage, unknown types and oversized frames are
ProtocolErrors, never crashes; the blocking and the asyncio ends agree over a real socket."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import orjson
import pytest

from triggerfish.errors import ProtocolError
from triggerfish.runtime import protocol as p
from triggerfish.runtime.channel import WorkerConnection

MESSAGES: list[Any] = [
    p.Request(id="r1", event={"a": [1, 2, {"b": None}]}, deadline=1.5, attempt=2, traceparent="00-x", hop_count=3),
    p.Result(id="r1", ok=True, result={"x": "é"}, started=1.0, ended=2.0),
    p.Result(id="r1", ok=False, error={"errorType": "E", "errorMessage": "m", "stackTrace": []}, retry_delay=1.0),
    p.Log(level="warning", message="hi"),
    p.Heartbeat(pid=4),
    p.Cancel(reason="idle"),
    p.PlatformCallFrame(op="publish", args={"bus": "default"}),
    p.PlatformAnswer(ok=False, error="nope"),
    p.Ready(pid=9, unenforced=["processes"], cgroup="/sys/fs/cgroup/pids/x"),
    p.LoadApp(target="app.py", version="1", work_dir="/w", overrides={"*": {"timeout": 1}}),
    p.Loaded(pid=1, app_name="a", functions=[{"name": "f"}], baseline_bytes=10),
    p.LoadFailed(message="m", details="tb"),
    p.Spawn(function="f", cwd="/w", memory_bytes=1, max_processes=2),
    p.Exited(pid=5, status=11),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: Any) -> None:
    data = p.encode(message)
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    assert p.decode(data[4:]) == message


@pytest.mark.parametrize(
    ("event", "traceparent", "time_limit", "prelude"),
    [
        ({"a": [1, 2, {"b": None}]}, "00-x", None, None),
        (None, None, None, None),
        ("é", "00-y", 3.0, None),
        ({"triggerfish-workflow": {"id": "w"}}, None, 3.0, {"resume": "w", "record": {"ops": []}}),
    ],
    ids=str,
)
def test_the_request_frame_is_the_one_encode_writes(
    event: Any, traceparent: str | None, time_limit: float | None, prelude: Any
) -> None:
    # time_limit is set on a request queued behind a running one (the async path's prefetch); a prelude is what the
    # platform read for the handler before sending it (a workflow run's begin).
    event_json = orjson.dumps(event)
    fast = p.request_frame("r1", event_json, 1.5, 2, traceparent, 3, time_limit, prelude)
    fields: dict[str, Any] = {
        "deadline": 1.5,
        "attempt": 2,
        "traceparent": traceparent,
        "hop_count": 3,
        "time_limit": time_limit,
        "prelude": prelude,
    }
    assert fast == p.encode(p.Request(id="r1", event=orjson.Fragment(event_json), **fields))
    assert p.decode(fast[4:]) == p.Request(id="r1", event=event, **fields)


def test_the_request_frame_keeps_to_the_frame_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(p, "MAX_FRAME", 100)
    with pytest.raises(ProtocolError, match="over the limit"):
        p.request_frame("r1", orjson.dumps("x" * 200), 1.5, 1, None, 0)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"t": "launch_missiles"}', "unknown frame type 'launch_missiles'"),
        (b'{"id": "r1"}', "unknown frame type None"),
        (b'{"t": "heartbeat", "pid": 1, "extra": 2}', "malformed 'heartbeat' frame"),
        (b'{"t": "request", "id": "r"}', "malformed 'request' frame"),
        (b'{"t": 7}', "unknown frame type 7"),
        (b"", "not JSON"),
    ],
)
def test_malformed_frames_are_protocol_errors(body: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        p.decode(body)


def test_the_frame_buffer_reassembles_split_and_joined_frames() -> None:
    frames = b"".join(p.encode(m) for m in MESSAGES)
    for size in (1, 3, 7, 64, len(frames)):
        buffer = p.FrameBuffer()
        bodies: list[bytes] = []
        for start in range(0, len(frames), size):
            bodies += buffer.feed(frames[start : start + size])
        assert [p.decode(b) for b in bodies] == MESSAGES


def test_an_oversized_frame_length_is_refused_before_reading_it() -> None:
    with pytest.raises(ProtocolError, match="over the limit"):
        p.FrameBuffer().feed((p.MAX_FRAME + 1).to_bytes(4, "big") + b"{}")
    with pytest.raises(ProtocolError, match="over the limit"):
        p.frame(b" " * (p.MAX_FRAME + 1))


def test_blocking_sockets_carry_frames_and_report_a_clean_close() -> None:
    left, right = socket.socketpair()
    with left, right:
        for message in MESSAGES:
            p.send_frame(left, message)
        assert [p.recv_frame(right) for _ in MESSAGES] == MESSAGES
        left.sendall(b"\x00\x00\x00\x10{")  # a frame cut short by the peer closing
        left.close()
        with pytest.raises(ProtocolError, match="middle of a frame"):
            p.recv_frame(right)
        assert p.recv_frame(right) is None


class CountingSocket:
    """A socket's `recv`, counted: how many system calls reading took."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reads = 0

    def recv(self, size: int) -> bytes:
        self.reads += 1
        return self.sock.recv(size)

    def fileno(self) -> int:  # what the reader waits on
        return self.sock.fileno()


def test_the_frame_reader_takes_a_frame_in_one_read_and_keeps_what_follows() -> None:
    left, right = socket.socketpair()
    with left, right:
        counted = CountingSocket(right)
        reader = p.FrameReader(counted)  # type: ignore[arg-type]
        p.send_frame(left, MESSAGES[0])
        assert reader.recv() == MESSAGES[0]
        assert counted.reads == 1  # the length and the body together
        # Frames joined in one send come out one by one, with no read in between.
        left.sendall(b"".join(p.encode(m) for m in MESSAGES))
        assert [reader.recv() for _ in MESSAGES] == MESSAGES
        # A frame larger than one read, and one split across sends, arrive whole.
        big = p.Log(level="info", message="x" * 1_000_000)
        data = p.encode(big)
        left.sendall(data[:3])
        sender = threading.Thread(target=left.sendall, args=(data[3:],))
        sender.start()
        assert reader.recv() == big
        sender.join()
        left.sendall(b"\x00\x00\x00\x10{")  # a frame cut short by the peer closing
        left.close()
        with pytest.raises(ProtocolError, match="middle of a frame"):
            reader.recv()


def test_the_frame_reader_reports_a_clean_close_as_none() -> None:
    left, right = socket.socketpair()
    with right:
        left.close()
        assert p.FrameReader(right).recv() is None


async def test_the_parent_connection_turns_garbage_into_a_protocol_error() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, connection = await loop.create_unix_connection(WorkerConnection, sock=ours)
    try:
        theirs.sendall(p.encode(p.Heartbeat(pid=1)) + p.frame(orjson.dumps({"t": "bogus"})))
        assert await connection.recv() == p.Heartbeat(pid=1)
        with pytest.raises(ProtocolError, match="bogus"):
            await connection.recv()
    finally:
        transport.close()
        theirs.close()


async def test_the_parent_connection_reports_a_closed_worker_as_none() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, connection = await loop.create_unix_connection(WorkerConnection, sock=ours)
    theirs.close()
    assert await connection.recv() is None
    with pytest.raises(ProtocolError, match="closed"):
        connection.send(b"x")
    transport.close()
