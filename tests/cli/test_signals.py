"""Long-running verbs stop cleanly on SIGINT and SIGTERM, also when a shell started them in the background.

A non-interactive shell starts `command &` with SIGINT ignored; these tests start each verb exactly so,
from bash, and signal it as a script or a process manager would.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.devserver import DevServer, poll

APP = """\
import triggerfish

app = triggerfish.App("signals")


@app.function
def hello(event, context):
    return "hi"
"""

TRIGGERFISH = shlex.join([sys.executable, "-m", "triggerfish"])


class Background:
    """A verb started by bash as `VERB > output 2>&1 &`; bash waits for it and says how it exited."""

    def __init__(self, arguments: str, cwd: Path) -> None:
        self.output = cwd / f"output-{os.urandom(4).hex()}.txt"
        script = f"{TRIGGERFISH} {arguments} > {shlex.quote(str(self.output))} 2>&1 & echo $!; wait $!; echo exit=$?"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGERFISH_")}
        self.shell = subprocess.Popen(
            ["bash", "-c", script], cwd=cwd, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        assert self.shell.stdout is not None
        self.pid = int(self.shell.stdout.readline())

    def text(self) -> str:
        return self.output.read_text() if self.output.exists() else ""

    def wait_for(self, words: str) -> None:
        poll(lambda: words in self.text(), timeout=60)

    def stop(self, sig: signal.Signals) -> int:
        """Send `sig` to the verb (not to bash) and return its exit status as bash saw it."""
        os.kill(self.pid, sig)
        said, _ = self.shell.communicate(timeout=30)
        return int(said.strip().removeprefix("exit="))

    def kill(self) -> None:
        if self.shell.poll() is None:
            os.killpg(self.shell.pid, signal.SIGKILL)
            self.shell.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)  # the verb, when bash was killed before it
        assert self.shell.stdout is not None
        self.shell.stdout.close()


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    project = tmp_path_factory.mktemp("signals")
    (project / "app.py").write_text(APP)
    server = DevServer("app.py", "--port", "0", "--no-reload", cwd=project).start()
    yield server
    server.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_logs_follow_in_the_background_stops_cleanly(dev: DevServer, tmp_path: Path, sig: signal.Signals) -> None:
    follower = Background(f"logs -f --server {dev.url}", tmp_path)
    try:
        follower.wait_for("following")
        assert follower.stop(sig) == 0
    finally:
        follower.kill()
    assert "Traceback" not in follower.text()
    assert "Aborted" not in follower.text()


@pytest.mark.parametrize("verb", ["dev app.py", "serve --no-isolation --data-dir server"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_dev_and_serve_in_the_background_drain_and_exit_0(tmp_path: Path, verb: str, sig: signal.Signals) -> None:
    (tmp_path / "app.py").write_text(APP)
    server = Background(f"{verb} --port 0", tmp_path)
    try:
        server.wait_for("serving on")
        assert server.stop(sig) == 0, server.text()
    finally:
        server.kill()
    said = server.text()
    assert "stopping: letting work in flight finish ..." in said
    assert said.rstrip().endswith("stopped")
    assert "Traceback" not in said
