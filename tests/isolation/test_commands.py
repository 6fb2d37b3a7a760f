"""How the commands choose isolation: `serve` boxes by default and will not start without bubblewrap
unless told so, loudly; `dev` boxes only with --isolate, and then as a server would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from tests.isolation.conftest import require_bwrap
from tests.server.devserver import DevServer

ROOT = Path(__file__).resolve().parent.parent.parent


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "triggerfish", "serve", "--port", "0", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_to_start_without_bubblewrap_and_names_the_ways_out(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()  # a PATH with no bwrap on it
    done = _serve("--data-dir", str(tmp_path / "data"), env={"PATH": str(empty)})
    assert done.returncode == 2
    assert "apps cannot be boxed here: bubblewrap ('bwrap') is not installed" in done.stderr
    assert "apt-get install bubblewrap" in done.stderr
    assert "--no-isolation" in done.stderr
    assert not (tmp_path / "data" / "admin.key").exists()  # nothing started


def test_serve_without_isolation_says_so_loudly_and_serves(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    server = DevServer(
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        "--no-isolation",
        cwd=ROOT,
        verb="serve",
        env={"PATH": str(empty)},
    ).start()
    try:
        assert httpx.get(f"{server.url}/-/health", timeout=10).status_code == 200
        output = server.output()
        assert "WARNING: isolation is off" in output
        assert "isolation: off" in output
    finally:
        server.stop()


def test_serve_s_config_file_can_turn_isolation_off_and_refuses_bad_box_sizes(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text("isolation = 'no'\n")
    done = _serve("--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    assert "isolation must be a bool, not 'no'" in done.stderr
    config.write_text("box_tmp_mb = 0\n")
    done = _serve("--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    assert "tmp_mb is a whole number of at least 1, not 0" in done.stderr


APP = """
import os

import triggerfish

app = triggerfish.App("isolated")


@app.http("GET", "/look")
def look(event, context):
    def can_read(path):
        try:
            open(path).close()
            return True
        except OSError:
            return False

    return {
        "uid": os.getuid(),
        "cwd": os.getcwd(),
        "sees_app": can_read(__file__),
        "sees_store": can_read(os.path.join(os.path.dirname(__file__), ".triggerfish", "isolated", "store.db")),
    }
"""


def test_dev_isolate_runs_the_app_as_a_server_would(tmp_path: Path) -> None:
    require_bwrap()
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(textwrap.dedent(APP))
    server = DevServer("app.py", "--port", "0", "--isolate", "--no-reload", cwd=project).start()
    try:
        seen = httpx.get(f"{server.url}/look", timeout=30).json()
        assert "isolation: on" in server.output()
    finally:
        server.stop()
    assert (project / ".triggerfish" / "isolated" / "store.db").exists()
    assert seen["sees_app"] is True
    assert seen["sees_store"] is False  # the data directory inside the project is hidden
    assert seen["cwd"] == "/home/app/functions/look"
    if os.geteuid() == 0:
        assert seen["uid"] >= 1_900_000_000
    else:
        assert seen["uid"] == os.getuid()


def test_dev_without_isolate_runs_unboxed_as_before(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(textwrap.dedent(APP))
    server = DevServer("app.py", "--port", "0", "--no-reload", cwd=project).start()
    try:
        seen = httpx.get(f"{server.url}/look", timeout=30).json()
    finally:
        server.stop()
    assert seen["uid"] == os.getuid()
    assert seen["sees_store"] is True
