"""`triggerfish dev`: a real process, a real socket, real edits to the app's file."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.devserver import DevServer, poll

APP = """
import time
from pathlib import Path

import triggerfish

app = triggerfish.App("hello")
OUT = Path({out!r})


@app.http("GET", "/hello/{{name}}")
def hello(event, context):
    return {{"hello": event["pathParameters"]["name"], "version": {version}}}


@app.http("POST", "/slow")
def slow(event, context):
    (OUT / "slow-started").write_text(str({version}))
    time.sleep(1.5)
    return {{"slept": True, "version": {version}}}


@app.on_event({{"type": ["Ping"]}})
def ping(event, context):
    (OUT / event["id"]).write_text(str({version}))
"""


def write_app(directory: Path, out: Path, version: int) -> Path:
    path = directory / "app.py"
    path.write_text(textwrap.dedent(APP).format(out=str(out), version=version))
    return path


@pytest.fixture
def out(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def server(tmp_path: Path, out: Path) -> Iterator[DevServer]:
    write_app(tmp_path, out, 1)
    dev = DevServer("app.py", "--port", "0", cwd=tmp_path)
    dev.start()
    yield dev
    dev.stop()


def ping(url: str, event_id: str) -> httpx.Response:
    event = {"specversion": "1.0", "id": event_id, "source": "tests", "type": "Ping"}
    return httpx.post(
        f"{url}/-/events", json=event, headers={"content-type": "application/cloudevents+json"}, timeout=10
    )


def test_dev_lists_the_functions_and_serves_routes_and_events(server: DevServer, out: Path) -> None:
    listing = server.output()
    assert "hello" in listing
    assert "GET /hello/{name}" in listing
    assert "ping" in listing
    answer = httpx.get(f"{server.url}/hello/ada", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"hello": "ada", "version": 1}
    health = httpx.get(f"{server.url}/-/health", timeout=10).json()
    assert health["status"] == "ok"
    assert health["app"] == "hello"
    assert health["version"] == 1
    published = ping(server.url, "e-1")
    assert published.status_code == 202
    assert published.json()["ids"] == ["e-1"]
    assert poll(lambda: (out / "e-1").exists() and (out / "e-1").read_text()) == "1"


def test_a_saved_change_serves_and_a_broken_edit_keeps_the_last_good_version(
    server: DevServer, tmp_path: Path, out: Path
) -> None:
    write_app(tmp_path, out, 2)
    server.wait_for_line(lambda line: "reloaded" in line and "version 2" in line)
    assert httpx.get(f"{server.url}/hello/bo", timeout=10).json() == {"hello": "bo", "version": 2}
    assert ping(server.url, "e-2").status_code == 202
    assert poll(lambda: (out / "e-2").exists() and (out / "e-2").read_text()) == "2"

    (tmp_path / "app.py").write_text("import triggerfish\nraise RuntimeError('half-written edit')\n")
    server.wait_for_line(lambda line: "still serving version 2" in line)
    assert "RuntimeError: half-written edit" in server.output()
    assert httpx.get(f"{server.url}/hello/cy", timeout=10).json() == {"hello": "cy", "version": 2}

    write_app(tmp_path, out, 4)
    server.wait_for_line(lambda line: "reloaded" in line)
    assert httpx.get(f"{server.url}/hello/di", timeout=10).json()["version"] == 4


def test_a_request_in_flight_during_a_reload_finishes_on_its_version(
    server: DevServer, tmp_path: Path, out: Path
) -> None:
    answers: list[httpx.Response] = []
    request = threading.Thread(target=lambda: answers.append(httpx.post(f"{server.url}/slow", timeout=20)))
    request.start()
    poll(lambda: (out / "slow-started").exists())
    write_app(tmp_path, out, 2)
    server.wait_for_line(lambda line: "reloaded" in line)
    request.join()
    assert answers[0].status_code == 200
    assert answers[0].json() == {"slept": True, "version": 1}
    assert httpx.post(f"{server.url}/slow", timeout=20).json() == {"slept": True, "version": 2}


def test_ctrl_c_lets_a_request_in_flight_finish_then_exits_cleanly(server: DevServer, out: Path) -> None:
    answers: list[httpx.Response] = []
    request = threading.Thread(target=lambda: answers.append(httpx.post(f"{server.url}/slow", timeout=20)))
    request.start()
    poll(lambda: (out / "slow-started").exists())
    server.interrupt()
    request.join()
    assert answers[0].status_code == 200
    assert answers[0].json()["slept"] is True
    assert server.wait() == 0
    assert "stopped" in server.output()


def test_an_app_that_does_not_load_exits_2_with_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import triggerfish\napp = triggerfish.App('x')\nimport no_such_module_here\n")
    dev = DevServer("app.py", "--port", "0", cwd=tmp_path)
    with pytest.raises(AssertionError, match="exited"):
        dev.start(timeout=30)
    assert dev.wait() == 2
    assert "ModuleNotFoundError" in dev.output()
    assert "no_such_module_here" in dev.output()


def test_a_port_in_use_is_a_clear_error(server: DevServer, tmp_path: Path) -> None:
    port = server.url.rsplit(":", 1)[1]
    other = tmp_path / "other"
    other.mkdir()
    write_app(other, other, 1)
    dev = DevServer("app.py", "--port", port, "--no-reload", cwd=other)
    with pytest.raises(AssertionError, match="exited"):
        dev.start(timeout=30)
    assert dev.wait() == 2
    assert f"127.0.0.1:{port} is in use" in dev.output()


@pytest.mark.parametrize(
    ("declaration", "reason"),
    [
        ('@app.schedule("cron(0 25 * * ? *)")', "hour"),
        ('@app.on_event({"type": [{"prefix": 1}]})', "prefix"),
    ],
)
def test_an_invalid_cron_or_pattern_fails_the_reload_with_the_reason_and_the_old_version_serves(
    server: DevServer, tmp_path: Path, out: Path, declaration: str, reason: str
) -> None:
    app_file = tmp_path / "app.py"
    app_file.write_text(app_file.read_text() + f"\n\n{declaration}\ndef broken(event, context):\n    return None\n")
    failure = server.wait_for_line(lambda line: line.startswith("reload failed"))
    assert "broken" in failure
    assert reason in failure
    server.wait_for_line(lambda line: "still serving version 1" in line)
    assert httpx.get(f"{server.url}/hello/ed", timeout=10).json() == {"hello": "ed", "version": 1}


def test_an_invalid_cron_at_start_exits_2_naming_the_function(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import triggerfish\napp = triggerfish.App('x')\n\n"
        "@app.schedule('rate(5 parsecs)')\ndef nightly(event, context):\n    return None\n"
    )
    dev = DevServer("app.py", "--port", "0", cwd=tmp_path)
    with pytest.raises(AssertionError, match="exited"):
        dev.start(timeout=30)
    assert dev.wait() == 2
    assert "nightly" in dev.output()
    assert "parsecs" in dev.output()
