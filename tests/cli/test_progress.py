"""Progress bars of the long verbs against a real `triggerfish dev`: in a pseudo-terminal the bar reaches 100%, in a
pipe the verb prints plain lines, with the counts the server reported (messages moved, events replayed)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import httpx
import orjson

from tests.cli.conftest import Dev

REPO = Path(__file__).resolve().parents[2]
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_VARIABLES = ("TRIGGERFISH_SERVER", "TRIGGERFISH_KEY", "TRIGGERFISH_APP", "TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR")


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _VARIABLES}
    env.update({"TERM": "xterm-256color", "TRIGGERFISH_CONFIG": str(tmp_path / "config.toml"), "COLUMNS": "120"})
    return env


def in_a_terminal(tmp_path: Path, *args: str) -> tuple[int, str]:
    """`triggerfish ARGS...` with a pseudo-terminal for its standard streams: its exit code and what it drew."""
    ours, theirs = pty.openpty()
    fcntl.ioctl(theirs, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "triggerfish", *args],
        stdin=theirs,
        stdout=theirs,
        stderr=theirs,
        env=_environment(tmp_path),
        cwd=REPO,
        close_fds=True,
    )
    os.close(theirs)
    drawn = b""
    try:
        while True:
            try:
                chunk = os.read(ours, 65536)
            except OSError:  # EIO: the terminal's other end is closed, the verb has exited
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(ours)
    return process.wait(timeout=60), drawn.decode("utf-8", errors="replace")


def in_a_pipe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "triggerfish", *args],
        capture_output=True,
        text=True,
        env=_environment(tmp_path),
        cwd=REPO,
        timeout=60,
    )


def dead_letters(dev: Dev, count: int) -> None:
    with httpx.Client(base_url=f"{dev.url}/-/api/v1", timeout=15) as api:
        for n in range(count):
            sent = api.post("/queues/emails.failed/messages", json={"body": f"bounced {n}"})
            assert sent.status_code == 200, sent.text


def test_redrive_draws_a_bar_to_100_percent_on_a_terminal(dev: Dev, tmp_path: Path) -> None:
    dead_letters(dev, 300)
    code, drawn = in_a_terminal(tmp_path, "queues", "redrive", "emails", "--server", dev.url)
    assert code == 0, drawn
    assert "\x1b[" in drawn  # drawn with rich's cursor moves and colours, not printed as lines
    shown = _ESCAPES.sub("", drawn)
    assert "moving dead letters back to emails: redrive" in shown
    assert "━" in shown  # the bar itself
    assert "300/300 messages" in shown
    assert "100%" in shown
    # Each frame the bar drew, in order: from nothing known yet, never backwards, to all of them.
    frames = re.findall(r"(\d+)/(\d+|\?) messages", shown)
    assert frames[0] == ("0", "?")
    assert frames[-1] == ("300", "300")
    done = [int(n) for n, _ in frames]
    assert done == sorted(done)
    assert "moved 300 messages from emails.failed to emails" in shown
    purged = httpx.delete(f"{dev.url}/-/api/v1/queues/emails/messages", timeout=15)
    assert purged.status_code == 200


def test_redrive_prints_plain_lines_into_a_pipe(dev: Dev, tmp_path: Path) -> None:
    dead_letters(dev, 120)
    done = in_a_pipe(tmp_path, "queues", "redrive", "emails", "--server", dev.url)
    assert done.returncode == 0, done.stderr
    # The result alone on standard output, for scripts; how it went on standard error, plain.
    assert done.stdout == "moved 120 messages from emails.failed to emails\n"
    assert "\x1b[" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[-1] == "moving dead letters back to emails: 120/120 messages (100%) [redrive]"
    assert all(line.startswith("moving dead letters back to emails: ") for line in lines)
    httpx.delete(f"{dev.url}/-/api/v1/queues/emails/messages", timeout=15)


def _publish(dev: Dev, count: int, source: str) -> None:
    batch = [
        {"specversion": "1.0", "id": str(uuid.uuid4()), "source": source, "type": "Tick", "data": {"n": n}}
        for n in range(count)
    ]
    published = httpx.post(
        f"{dev.url}/-/events",
        content=orjson.dumps(batch),
        headers={"content-type": "application/cloudevents-batch+json"},
        timeout=15,
    )
    assert published.status_code in (200, 202), published.text


def test_replay_draws_a_bar_of_the_events_in_the_range(dev: Dev, tmp_path: Path) -> None:
    start = f"{time.time() - 1:.3f}"
    _publish(dev, 250, "progress-tests")
    end = f"{time.time() + 1:.3f}"
    code, drawn = in_a_terminal(
        tmp_path, "events", "replay", "--start", start, "--end", end, "--server", dev.url, "--name", "bar"
    )
    assert code == 0, drawn
    shown = _ESCAPES.sub("", drawn)
    assert "replaying bus default: replay" in shown
    assert re.search(r"(\d+)/\1 events", shown), shown  # all of them, however many others published meanwhile
    assert "100%" in shown
    assert "queued " in shown


def test_replay_prints_plain_lines_into_a_pipe(dev: Dev, tmp_path: Path) -> None:
    start = f"{time.time() - 1:.3f}"
    _publish(dev, 40, "progress-tests")
    end = f"{time.time() + 1:.3f}"
    done = in_a_pipe(tmp_path, "events", "replay", "--start", start, "--end", end, "--server", dev.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("queued ")
    assert "\x1b[" not in done.stderr
    last_bar = done.stderr.splitlines()[-1]
    assert re.fullmatch(r"replaying bus default: (\d+)/\1 events \(100%\) \[replay\]", last_bar), last_bar


def test_the_server_reports_progress_by_the_id_the_request_named(dev: Dev) -> None:
    dead_letters(dev, 5)
    operation = uuid.uuid4().hex
    with httpx.Client(base_url=f"{dev.url}/-/api/v1", timeout=15) as api:
        assert api.get(f"/progress/{operation}").status_code == 404
        moved = api.post("/queues/emails/redrive", json={}, headers={"X-Triggerfish-Progress": operation})
        assert moved.json()["moved"] == 5
        progress = api.get(f"/progress/{operation}").json()
        assert progress["step"] == "redrive"
        assert (progress["done"], progress["total"], progress["unit"], progress["finished"]) == (5, 5, "messages", True)
        refused = api.post("/queues/emails/redrive", json={}, headers={"X-Triggerfish-Progress": "no good!"})
        assert refused.status_code == 400
        assert "x-triggerfish-progress" in refused.json()["error"]["message"]
        api.delete("/queues/emails/messages")


def test_deploy_draws_the_upload_and_the_steps_against_a_real_server(tmp_path: Path) -> None:
    from tests.server.test_serve import start_server, write_app

    running = start_server(tmp_path / "server")
    try:
        shop = write_app(tmp_path / "shop", "shop", 1)
        code, drawn = in_a_terminal(tmp_path, "deploy", str(shop), "--server", running.url, "--key", running.admin)
        assert code == 0, drawn
        shown = _ESCAPES.sub("", drawn)
        assert re.search(r"uploading [\d.]+ \S+ .*━.* (\d+)/\1 bytes .*100%", shown), shown
        assert re.search(r"deploying: live .*━.* 3/3 steps .*100%", shown), shown
        assert "deployed shop version 1: live now" in shown
        # In a pipe: the phase lines as before, no bar, nothing asked of the progress endpoint.
        again = write_app(tmp_path / "shop", "shop", 2)
        env = _environment(tmp_path)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "triggerfish",
                "deploy",
                str(again),
                "--server",
                running.url,
                "--key",
                running.admin,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "\x1b[" not in done.stdout
        assert [line.split(":", 1)[0] for line in done.stdout.splitlines()[:5]] == [
            "pack",
            "upload",
            "install",
            "import",
            "switch",
        ]
    finally:
        running.process.stop()
