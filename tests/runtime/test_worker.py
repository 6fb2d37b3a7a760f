"""The worker's serving loop over a real socket: requests, heartbeats, platform calls, cancel, and
hostile frames (run here in a thread; the fork around it is covered by the other runtime tests)."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from triggerfish.errors import ProtocolError
from triggerfish.model import FunctionSettings, FunctionSpec
from triggerfish.runtime import protocol as p
from triggerfish.runtime.worker import Worker, worker_environment

#: Where the handler writes for event "write": the test's stand-in for the worker's output pipe.
OUTPUT_FD: list[int] = []


def handler(event: Any, context: Any) -> Any:
    if event == "write":
        os.write(OUTPUT_FD[0], b"left unread\n")
        return None
    if event == "platform":
        return context.call_platform("kv_get", {"key": "k"})
    if event == "memory":
        raise MemoryError
    return {"echo": event, "remaining": context.get_remaining_time_in_millis() > 0}


SPEC = FunctionSpec(
    name="f", handler=handler, ref="tests:handler", settings=FunctionSettings(memory_mb=256, env={"A": "1"})
)


@pytest.fixture
def served() -> Iterator[tuple[socket.socket, list[BaseException]]]:
    parent, child = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            Worker(child, SPEC, app_name="app", version="3").serve()
        except BaseException as exc:
            errors.append(exc)
        finally:
            child.shutdown(socket.SHUT_RDWR)  # as the worker's exit would

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield parent, errors
    parent.close()
    thread.join(5)
    child.close()
    assert not thread.is_alive()


def call(sock: socket.socket, event: Any) -> p.Message | None:
    p.send_frame(sock, p.Request(id="r1", event=event, deadline=time.time() + 5))
    return p.recv_frame(sock)


def test_a_request_gets_its_result(served: tuple[socket.socket, list[BaseException]]) -> None:
    sock, _ = served
    result = call(sock, {"x": 1})
    assert isinstance(result, p.Result)
    assert result.ok
    assert result.id == "r1"
    assert result.result == {"echo": {"x": 1}, "remaining": True}
    assert result.started <= result.ended


def test_the_result_says_whether_output_was_left_unread() -> None:
    read_fd, write_fd = os.pipe()
    parent, child = socket.socketpair()
    OUTPUT_FD[:] = [write_fd]
    worker = Worker(child, SPEC, app_name="app", version="3", output_fd=write_fd)
    thread = threading.Thread(target=worker.serve, daemon=True)
    thread.start()
    try:
        wrote = call(parent, "write")
        assert isinstance(wrote, p.Result)
        assert wrote.ok
        assert wrote.unread_output is True  # the parent must read the pipe before it reports the output
        assert os.read(read_fd, 100) == b"left unread\n"
        quiet = call(parent, {"x": 1})
        assert isinstance(quiet, p.Result)
        assert quiet.ok
        assert quiet.unread_output is False  # nothing left: the parent may skip the read
    finally:
        parent.close()
        thread.join(5)
        child.close()
        os.close(read_fd)
        os.close(write_fd)
    assert not thread.is_alive()


def test_a_worker_that_cannot_tell_says_output_may_be_unread(
    served: tuple[socket.socket, list[BaseException]],
) -> None:
    sock, _ = served
    result = call(sock, {"x": 1})
    assert isinstance(result, p.Result)
    assert result.unread_output is True


def test_a_platform_call_waits_for_the_parents_answer(served: tuple[socket.socket, list[BaseException]]) -> None:
    sock, _ = served
    p.send_frame(sock, p.Request(id="r2", event="platform", deadline=time.time() + 5))
    asked = p.recv_frame(sock)
    assert asked == p.PlatformCallFrame(op="kv_get", args={"key": "k"})
    p.send_frame(sock, p.PlatformAnswer(ok=True, value={"v": 42}))
    result = p.recv_frame(sock)
    assert isinstance(result, p.Result)
    assert result.result == {"v": 42}
    # A refused call raises inside the handler, with the platform's reason.
    p.send_frame(sock, p.Request(id="r3", event="platform", deadline=time.time() + 5))
    p.recv_frame(sock)
    p.send_frame(sock, p.PlatformAnswer(ok=False, error="KeyError: 'k'"))
    failed = p.recv_frame(sock)
    assert isinstance(failed, p.Result)
    assert not failed.ok
    assert failed.error is not None
    assert "KeyError: 'k'" in failed.error["errorMessage"]


def test_memory_error_becomes_out_of_memory_and_retires_the_worker(
    served: tuple[socket.socket, list[BaseException]],
) -> None:
    sock, _ = served
    result = call(sock, "memory")
    assert isinstance(result, p.Result)
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.OutOfMemory"
    assert "256 MB" in result.error["errorMessage"]
    assert result.retire


def test_heartbeat_is_answered_and_cancel_ends_the_loop(served: tuple[socket.socket, list[BaseException]]) -> None:
    sock, errors = served
    p.send_frame(sock, p.Heartbeat(pid=0))
    answer = p.recv_frame(sock)
    assert isinstance(answer, p.Heartbeat)
    assert answer.pid > 0
    p.send_frame(sock, p.Cancel(reason="idle"))
    assert p.recv_frame(sock) is None  # the loop ended: the worker exits
    assert errors == []


@pytest.mark.parametrize(
    "frame",
    [
        p.frame(b"{garbage"),
        p.frame(orjson.dumps({"t": "exec", "cmd": "rm -rf /"})),
        p.encode(p.Exited(pid=1, status=0)),
        (p.MAX_FRAME + 1).to_bytes(4, "big"),
    ],
    ids=["not-json", "unknown-type", "wrong-direction", "oversized"],
)
def test_a_hostile_frame_stops_the_worker_with_a_protocol_error(
    served: tuple[socket.socket, list[BaseException]], frame: bytes
) -> None:
    sock, errors = served
    sock.sendall(frame)
    assert p.recv_frame(sock) is None
    assert len(errors) == 1
    assert isinstance(errors[0], ProtocolError)


def test_the_environment_is_the_minimal_set_plus_the_declared_one() -> None:
    env = worker_environment(SPEC, app_name="app", version="3", cwd="/w/functions/f", task_root="/w/code")
    assert env["A"] == "1"
    assert env["LAMBDA_TASK_ROOT"] == "/w/code"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == f"app-{SPEC.name}"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/app-{SPEC.name}"
    assert env["HOME"] == "/w/functions/f"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "3"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["_HANDLER"] == "tests:handler"
    assert set(env) == {
        *("PATH", "LANG", "TZ", "HOME", "A", "_HANDLER", "AWS_REGION", "AWS_DEFAULT_REGION"),
        *("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        *("AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE"),
        *("AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"),
        *("TRIGGERFISH_APP", "TRIGGERFISH_FUNCTION", "TRIGGERFISH_VERSION"),
    }


def test_has_children_sees_running_and_exited_children_and_reaps_none() -> None:
    # In a fresh interpreter: this test process may have children of its own (runners of other tests).
    script = """
import os, subprocess
from triggerfish.runtime.worker import _has_children
seen = [_has_children()]
child = subprocess.Popen(["sleep", "0.1"])
seen.append(_has_children())
os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # until it exited, leaving it unreaped
seen.append(_has_children())
reaped, _ = os.waitpid(child.pid, 0)  # ChildProcessError here if _has_children had reaped it
seen.append(reaped == child.pid)
seen.append(_has_children())
print(*seen)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False", "True", "True", "True", "False"]


_SERVE_ON_FD = """
import socket, sys
from triggerfish.model import FunctionSettings, FunctionSpec
from triggerfish.runtime.worker import Worker

def handler(event, context):
    return event

spec = FunctionSpec(name="f", handler=handler, ref="x:handler", settings=FunctionSettings())
Worker(socket.socket(fileno=int(sys.argv[1])), spec, app_name="app", version="1").serve()
"""


def _state_and_sleeps(pid: int) -> tuple[str, int]:
    """A process's scheduler state letter and how many times it has gone to sleep (voluntary switches)."""
    with open(f"/proc/{pid}/stat") as stat:
        state = stat.read().rpartition(")")[2].split()[0]
    with open(f"/proc/{pid}/status") as status:
        sleeps = next(int(line.split()[1]) for line in status if line.startswith("voluntary_ctxt_switches:"))
    return state, sleeps


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="counts context switches in /proc")
def test_a_worker_sleeps_once_per_invocation_not_again_when_its_result_is_read() -> None:
    # A Unix socket wakes whoever sleeps on it when the peer reads what it sent (room to write again): a worker
    # waiting for its next request in a blocking recv woke for nothing each time the parent read its result.
    parent, child = socket.socketpair()
    worker = subprocess.Popen([sys.executable, "-c", _SERVE_ON_FD, str(child.fileno())], pass_fds=[child.fileno()])
    child.close()
    reader = p.FrameReader(parent)

    def asleep() -> int:
        """Wait until the worker sleeps (waiting for a request); its sleeps so far."""
        deadline = time.monotonic() + 30
        while True:
            state, sleeps = _state_and_sleeps(worker.pid)
            if state == "S" or time.monotonic() > deadline:
                return sleeps
            time.sleep(0.001)

    try:
        p.send_frame(parent, p.Request(id="warm", event=0, deadline=time.time() + 30))
        assert isinstance(reader.recv(), p.Result)
        invocations = 40
        before = asleep()
        for n in range(invocations):
            p.send_frame(parent, p.Request(id=f"r{n}", event=n, deadline=time.time() + 30))
            select.select([parent], [], [], 30)  # the result is there ...
            asleep()  # ... and the worker waits for the next request before the parent reads it
            result = reader.recv()
            assert isinstance(result, p.Result)
            assert result.result == n
        sleeps = asleep() - before
    finally:
        parent.close()
        worker.wait(30)
    assert invocations <= sleeps <= invocations * 1.25, f"{sleeps} sleeps for {invocations} invocations"
