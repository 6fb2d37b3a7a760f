"""`triggerfish logs` against a real `triggerfish dev`: listing, filters, --json, colour, and following."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.cli.conftest import run
from tests.server.devserver import DevServer
from triggerfish.deploy.bundle import pack
from triggerfish.gateway import GatewayServer
from triggerfish.server.host import Host
from triggerfish.server.host_http import HostASGI

APP = """
import triggerfish

app = triggerfish.App("cli-logs")


@app.function()
def ship(event, context):
    print("packing", event["order"])
    context.logger.warning("courier is slow today")
    return "shipped"


@app.function()
def refund(event, context):
    raise ValueError(f"order {event['order']} was never paid")
"""

WAIT = 30.0
LINE = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<where>\S+) (?P<version>v\d+) (?P<request_id>\S+)"
    r" (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<message>.*)"
)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `triggerfish dev` serving APP; its URL."""
    directory = tmp_path_factory.mktemp("dev")
    (directory / "app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    server = DevServer("app.py", "--port", "0", "--data-dir", str(directory / "data"), "--no-reload", cwd=directory)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def env(dev: str) -> dict[str, str]:
    return {"TRIGGERFISH_SERVER": dev}


def invoke(url: str, function: str, event: dict[str, Any]) -> str:
    answer = httpx.post(f"{url}/-/api/v1/functions/{function}/invoke", json=event, timeout=WAIT)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-triggerfish-request-id"]


def test_lines_print_as_time_function_version_request_id_level_message(dev: str, env: dict[str, str]) -> None:
    request_id = invoke(dev, "ship", {"order": "o-1"})
    done = run("logs", "--request-id", request_id, env=env)
    assert done.exit_code == 0, done.stderr
    lines = [LINE.fullmatch(text) for text in done.stdout.splitlines()]
    assert all(lines), done.stdout
    parsed = [line.groupdict() for line in lines if line]
    assert {(p["where"], p["version"], p["request_id"]) for p in parsed} == {("ship", "v1", request_id)}
    assert [(p["level"], p["message"]) for p in parsed[:3]] == [
        ("INFO", f"START RequestId: {request_id} Version: 1"),
        ("INFO", "packing o-1"),
        ("WARNING", "courier is slow today"),
    ]
    assert parsed[-1]["message"].startswith(f"REPORT RequestId: {request_id}\tDuration: ")
    assert "\tBilled Duration: " in parsed[-1]["message"]


def test_json_prints_one_object_per_line(dev: str, env: dict[str, str]) -> None:
    request_id = invoke(dev, "ship", {"order": "o-2"})
    done = run("logs", "/ship", "--request-id", request_id, "--json", env=env)
    documents = [json.loads(text) for text in done.stdout.splitlines()]
    assert [d["kind"] for d in documents] == ["start", "output", "output", "end", "report"]
    assert {d["request_id"] for d in documents} == {request_id}
    assert documents[-1]["report"]["memory_mb"] == 128


def test_level_function_and_since_filter_the_lines(dev: str, env: dict[str, str]) -> None:
    invoke(dev, "ship", {"order": "o-3"})
    failed = httpx.post(f"{dev}/-/api/v1/functions/refund/invoke", json={"order": "o-4"}, timeout=WAIT)
    errors = run("logs", "--level", "error", "--since", "10m", "--json", env=env)
    documents = [json.loads(text) for text in errors.stdout.splitlines()]
    assert {d["level"] for d in documents} == {"ERROR"}
    assert "ValueError: order o-4 was never paid" in {d["message"] for d in documents}
    assert failed.headers["x-triggerfish-request-id"] in {d["request_id"] for d in documents}
    refunds = run("logs", "/refund", "--json", env=env)
    assert {json.loads(text)["function"] for text in refunds.stdout.splitlines()} == {"refund"}
    newest = run("logs", "/ship", "--limit", "1", env=env)
    assert newest.stdout.count("\n") == 1
    assert "REPORT RequestId: " in newest.stdout
    assert "older lines left out" in newest.stderr


def test_on_a_terminal_levels_are_coloured(dev: str, env: dict[str, str]) -> None:
    request_id = invoke(dev, "ship", {"order": "o-5"})
    done = run("logs", "--request-id", request_id, env={**env, "TTY_COMPATIBLE": "1", "FORCE_COLOR": "1"})
    assert "\x1b[33mWARNING" in done.stdout
    assert "courier is slow today" in done.stdout
    plain = run("logs", "--request-id", request_id, env=env)
    assert "\x1b[" not in plain.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--since", "yesterday"], "--since must be a duration such as 30s, 10m, 2h or 1d"),
        (["--level", "loud"], "--level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        (["shop/"], "'shop/' is not APP, APP/FUNCTION or /FUNCTION"),
        (["shop/ship/x"], "is not APP, APP/FUNCTION or /FUNCTION"),
    ],
)
def test_bad_options_exit_2_with_the_reason(env: dict[str, str], args: list[str], says: str) -> None:
    done = run("logs", *args, env=env)
    assert done.exit_code == 2
    assert says in done.stderr


def test_an_unknown_function_is_the_servers_refusal(env: dict[str, str]) -> None:
    done = run("logs", "/nope", env=env)
    assert done.exit_code == 1
    assert "FunctionNotFound" in done.stderr
    assert "no function named 'nope'" in done.stderr


def test_no_server_exits_3_and_says_what_to_run() -> None:
    # A port bound and closed again: nothing listens on it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    done = run("logs", "--server", url)
    assert done.exit_code == 3
    assert (
        f"server unreachable at {url} (from --server): is `triggerfish dev` or"
        " `triggerfish serve` running there? Give another with --server URL (or $TRIGGERFISH_SERVER)" in done.stderr
    )


class Follower:
    """`triggerfish logs -f` in a subprocess, its stdout and stderr read line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "triggerfish", "logs", "-f", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("TRIGGERFISH_")},
        )
        self.out: queue.Queue[str | None] = queue.Queue()
        self.err: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._threads = [
            threading.Thread(target=_pump, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=_pump, args=(self.process.stderr, self.err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def line(self, lines: queue.Queue[str | None]) -> str:
        try:
            text = lines.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("triggerfish logs -f printed nothing in time") from None
        assert text is not None, "triggerfish logs -f closed its output"
        return text

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(WAIT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for thread in self._threads:
                thread.join(5)


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for text in stream:
        lines.put(text.rstrip("\n"))
    stream.close()
    lines.put(None)


def test_follow_prints_new_lines_as_they_happen_and_ctrl_c_exits_0(dev: str) -> None:
    before = invoke(dev, "ship", {"order": "o-old"})
    follower = Follower("/ship", "--server", dev)
    try:
        assert follower.line(follower.err) == f"following {dev}/-/api/v1/logs (Ctrl-C to stop)"
        request_id = invoke(dev, "ship", {"order": "o-6"})
        seen: list[str] = []
        while not seen or "REPORT RequestId: " not in seen[-1]:
            seen.append(follower.line(follower.out))
        assert before not in "\n".join(seen)
        assert [LINE.fullmatch(text)["message"] for text in seen[:2]] == [  # type: ignore[index]
            f"START RequestId: {request_id} Version: 1",
            "packing o-6",
        ]
    finally:
        code = follower.stop()
    assert code == 0


def test_follow_with_json_streams_objects(dev: str) -> None:
    follower = Follower("--json", "--level", "warning", "--server", dev)
    try:
        assert follower.line(follower.err).startswith("following ")
        request_id = invoke(dev, "ship", {"order": "o-7"})
        document = json.loads(follower.line(follower.out))
        assert (document["request_id"], document["level"], document["message"]) == (
            request_id,
            "WARNING",
            "courier is slow today",
        )
    finally:
        assert follower.stop() == 0


def test_follow_ends_cleanly_when_the_dev_server_stops(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    server = DevServer("app.py", "--port", "0", "--data-dir", str(tmp_path / "data"), "--no-reload", cwd=tmp_path)
    server.start()
    try:
        follower = Follower("--server", server.url)
        try:
            assert follower.line(follower.err).startswith("following ")
            server.interrupt()
            assert follower.line(follower.err) == "the server ended the stream: the server is stopping"
            # It exits by itself once the server ends the stream; no Ctrl-C is needed.
            assert follower.process.wait(WAIT) == 0
        finally:
            follower.stop()
        assert server.wait() == 0
        # The follow ended by itself: the server did not have to cancel it.
        assert "graceful shutdown exceeded" not in server.output()
    finally:
        server.stop()


async def test_against_a_server_app_selects_the_app_and_a_revoked_key_exits_4(tmp_path: Path) -> None:
    host = Host(data_dir=tmp_path / "server")
    await host.start()
    try:
        admin, _ = await host.keys.create("ops", "admin")
        async with (
            GatewayServer(HostASGI(host), port=0) as server,
            httpx.AsyncClient(
                base_url=f"{server.url}/-/api/v1/apps/shop", timeout=WAIT, headers={"authorization": f"Bearer {admin}"}
            ) as api,
        ):
            (tmp_path / "shop").mkdir()
            (tmp_path / "shop" / "app.py").write_text(textwrap.dedent(APP).replace("cli-logs", "shop"))
            bundle = pack(tmp_path / "shop")
            gzip = {"content-type": "application/gzip"}
            assert (await api.put(f"/bundles/{bundle.sha256}", content=bundle.data, headers=gzip)).status_code == 201
            assert (await api.post("/deploys", json={"bundle": bundle.sha256})).status_code == 201
            request_id = (await api.post("/functions/ship/invoke", json={"order": "o-8"})).headers[
                "x-triggerfish-request-id"
            ]
            viewer, info = await host.keys.create("shop reader", "viewer", app="shop")
            common = ("--server", server.url, "--key", viewer)

            listed = await cli("logs", "shop/ship", "--request-id", request_id, *common)
            assert listed.returncode == 0, listed.stderr
            assert f"shop/ship v1 {request_id} INFO packing o-8" in listed.stdout.splitlines()[1]

            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "triggerfish", "logs", "shop", "-f", *common,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            assert process.stderr is not None
            async with asyncio.timeout(WAIT):
                opened = await process.stderr.readline()
                assert opened.decode().startswith(f"following {server.url}/-/api/v1/apps/shop/logs")
                assert (await api.delete(f"{server.url}/-/api/v1/keys/{info.id}")).status_code == 200
                _, err = await process.communicate()
            assert process.returncode == 4
            assert "not authorised: the API key that opened this stream was revoked" in err.decode()
    finally:
        await host.stop()


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`triggerfish ARGS...` in a subprocess, not blocking the event loop that serves."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "triggerfish", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with asyncio.timeout(WAIT):
        out, err = await process.communicate()
    assert process.returncode is not None
    return subprocess.CompletedProcess(list(args), process.returncode, out.decode(), err.decode())
