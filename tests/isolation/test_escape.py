"""The escape suite: a real `triggerfish serve` with two tenants' apps deployed, and a handler of tenant A
trying everything a hostile tenant tried before apps were boxed. Each attempt must fail, and afterwards the
server still serves both apps as before."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.isolation.conftest import require_bwrap, require_root
from tests.server.devserver import DevServer

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET = "s3cret-password-of-the-server"
TMP_MB = 16
MAX_TASKS = 256

ATTACKER = """
import ctypes, os, signal, sqlite3, time, urllib.error, urllib.request

import triggerfish

app = triggerfish.App("tenant-a")
IMPORT_ENVIRONMENT = dict(os.environ)


def attempt(action):
    try:
        return {"ok": True, "value": action()}
    except BaseException as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def fork_bomb():
    forked = 0
    try:
        while forked < 100_000:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            forked += 1
    except OSError as exc:
        return {"forked": forked, "error": type(exc).__name__}
    return {"forked": forked, "error": None}


def fill(path):
    written = 0
    chunk = b"x" * (1 << 20)
    try:
        with open(path, "wb") as f:
            while written < (1 << 34):
                f.write(chunk)
                f.flush()
                written += len(chunk)
    except OSError as exc:
        return {"written": written, "error": type(exc).__name__}
    return {"written": written, "error": None}


@app.function(timeout=30, memory_mb=256)
def attack(event, context):
    what, arg = event["what"], event.get("arg")
    libc = ctypes.CDLL(None, use_errno=True)
    actions = {
        "read": lambda: open(arg, "rb").read(200).decode("latin-1"),
        "write": lambda: open(arg, "a").write("pwned"),
        "sqlite": lambda: sqlite3.connect(f"file:{arg}?mode=ro", uri=True).execute("select 1").fetchall(),
        "kill": lambda: os.kill(arg, signal.SIGKILL),
        "listdir": lambda: sorted(os.listdir(arg)),
        "http": lambda: http_status(arg),
        "unshare": lambda: (libc.unshare(0x10000000), ctypes.get_errno()),
        "ptrace": lambda: (libc.ptrace(16, arg, 0, 0), ctypes.get_errno()),
        "forkbomb": fork_bomb,
        "fill": lambda: fill(arg),
        "environment": lambda: {
            "handler": dict(os.environ),
            "import": IMPORT_ENVIRONMENT,
            "pid1": attempt(lambda: open("/proc/1/environ", "rb").read().decode("latin-1")),
        },
        "whoami": lambda: {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "cwd": os.getcwd()},
    }
    return attempt(actions[what])


@app.function(timeout=10)
def suicide(event, context):
    os.kill(-1, signal.SIGKILL)  # everything this tenant may signal
"""

VICTIM = """
import os

import triggerfish

app = triggerfish.App("tenant-b")


@app.http("GET", "/hello")
def hello(event, context):
    return {"app": "tenant-b", "uid": os.getuid(), "pid": os.getpid()}
"""


@dataclass
class Served:
    server: DevServer
    admin: str
    data_dir: Path
    a_bundle: Path
    b_bundle: Path

    @property
    def url(self) -> str:
        return self.server.url

    def attack(self, what: str, arg: Any = None) -> Any:
        answer = httpx.post(
            f"{self.url}/-/api/v1/apps/tenant-a/functions/attack/invoke",
            json={"what": what, "arg": arg},
            headers={"authorization": f"Bearer {self.admin}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def hello(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/tenant-b/hello", timeout=30)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def _deploy(directory: Path, url: str, key: str) -> dict[str, Any]:
    env = {**os.environ, "TRIGGERFISH_SERVER": url, "TRIGGERFISH_KEY": key, "TRIGGERFISH_CONFIG": os.devnull}
    done = subprocess.run(
        [sys.executable, "-m", "triggerfish", "deploy", str(directory), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return dict(json.loads(done.stdout))


def _project(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "app.py").write_text(textwrap.dedent(source))
    (directory / "triggerfish.toml").write_text(f'name = "{name}"\n')
    return directory


def _only_bundle(data_dir: Path, containing: str) -> Path:
    trees = [p for p in (data_dir / "bundles" / "by-app").glob("*/*") if (p / "app.py").is_file()]
    [bundle] = [p for p in trees if containing in (p / "app.py").read_text()]
    return bundle


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    require_bwrap()
    require_root()
    root = tmp_path_factory.mktemp("escape")
    data_dir = root / "server"
    config = root / "serve.toml"
    config.write_text(f"box_tmp_mb = {TMP_MB}\nbox_max_tasks = {MAX_TASKS}\n")
    server = DevServer(
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--config",
        str(config),
        cwd=ROOT,
        verb="serve",
        env={"TRIGGERFISH_TEST_SECRET": SECRET},
    ).start()
    try:
        line = next(line for line in server.lines if line.startswith("admin key"))
        admin = re.search(r"(tfk_\S+)", line).group(1)  # type: ignore[union-attr]
        _deploy(_project(root / "a", "tenant-a", ATTACKER), server.url, admin)
        _deploy(_project(root / "b", "tenant-b", VICTIM), server.url, admin)
        yield Served(server, admin, data_dir, _only_bundle(data_dir, "tenant-a"), _only_bundle(data_dir, "tenant-b"))
    finally:
        server.stop()


def _digest(directory: Path) -> str:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def _pids_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _failed(outcome: dict[str, Any]) -> str:
    assert outcome["ok"] is False, f"the attack worked: {outcome}"
    return str(outcome["error"])


def test_each_tenant_runs_as_a_uid_of_its_own_with_nothing_but_its_own_groups(served: Served) -> None:
    a = served.attack("whoami")["value"]
    b = served.hello()
    assert a["uid"] != b["uid"]
    assert a["uid"] not in (0, os.getuid())
    assert b["uid"] not in (0, os.getuid())
    assert a["groups"] == [a["gid"]] or a["groups"] == []
    assert a["cwd"] == "/home/app/functions/attack"


def test_secrets_of_the_server_and_other_tenants_cannot_be_read_or_written(served: Served) -> None:
    data = served.data_dir
    b_before = _digest(served.b_bundle)
    for path in (data / "admin.key", data / "store.db", served.b_bundle / "app.py", "/etc/shadow", "/proc/1/root"):
        _failed(served.attack("read", str(path)))
    _failed(served.attack("sqlite", str(data / "store.db")))
    for path in (served.b_bundle / "app.py", served.a_bundle / "app.py", data / "evil", "/evil", "/usr/evil"):
        _failed(served.attack("write", str(path)))
    # Walking up from its working directory finds nothing of the server's.
    listed = served.attack("listdir", str(data))
    assert not listed["ok"] or not {"admin.key", "store.db", "apps"} & set(listed["value"]), listed
    # Of the bundles, only its own is there: no other app's, and not even its own archive.
    own = served.attack("listdir", str(served.a_bundle.parent))
    assert own["value"] == [served.a_bundle.name], own
    apps = served.attack("listdir", str(served.a_bundle.parent.parent))
    assert apps["value"] == [served.a_bundle.parent.name], apps
    assert _digest(served.b_bundle) == b_before


def test_other_processes_cannot_be_seen_or_signalled(served: Served) -> None:
    server_pid = served.server.process.pid if served.server.process else 0
    b_uid = served.hello()["uid"]
    b_processes = _pids_of(b_uid)
    assert b_processes, "tenant B's zygote is running"
    for pid in (server_pid, *b_processes):
        assert "ProcessLookupError" in _failed(served.attack("kill", pid))
        _failed(served.attack("read", f"/proc/{pid}/environ"))
    visible = [int(name) for name in served.attack("listdir", "/proc")["value"] if name.isdigit()]
    assert len(visible) < 20, visible  # its own box's pids only
    assert max(visible) < 1000, visible
    assert served.attack("ptrace", 1)["value"][1] == 1  # EPERM: seccomp
    assert served.attack("unshare")["value"][1] == 1  # no user namespace inside a box
    assert served.server.process is not None
    assert served.server.process.poll() is None
    assert _pids_of(b_uid) == b_processes  # B's zygote was not killed, and so did not restart


def test_the_environment_holds_no_secret_of_the_server(served: Served) -> None:
    seen = served.attack("environment")["value"]
    for where in ("handler", "import"):
        assert SECRET not in json.dumps(seen[where]), where
        assert not {"TRIGGERFISH_TEST_SECRET", "TRIGGERFISH_KEY", "PYTHONUNBUFFERED_NOT"} & set(seen[where])
    # The box's first process: a worker in its own user namespace may not even read its environment.
    assert seen["pid1"]["ok"] is False or SECRET not in seen["pid1"]["value"]
    assert seen["handler"]["AWS_LAMBDA_FUNCTION_NAME"] == "tenant-a-attack"  # the Lambda name: <app>-<function>


def test_the_control_api_answers_401_to_a_handler_without_a_credential(served: Served) -> None:
    for path in ("/-/api/v1/apps", "/-/api/v1/keys", "/-/api/v1/apps/tenant-b/functions"):
        assert served.attack("http", served.url + path)["value"] == 401


def test_fork_bombs_and_full_disks_stop_at_the_box_s_limits(served: Served) -> None:
    bomb = served.attack("forkbomb")["value"]
    assert bomb["error"] == "BlockingIOError"
    assert 0 < bomb["forked"] < MAX_TASKS
    # The worker's own /tmp is memory: its pages count toward the worker's memory_mb (256), which ends it first.
    filled = served.attack("fill", "/tmp/filler")
    assert filled["errorType"] == "Runtime.OutOfMemory"
    again = served.attack("fill", "./filler")["value"]  # the working directory: the box's bounded home
    assert again["error"] == "OSError"
    assert again["written"] <= TMP_MB * 1024 * 1024


def test_after_a_tenant_kills_everything_it_can_both_apps_still_serve(served: Served) -> None:
    b_before = served.hello()
    killed = httpx.post(
        f"{served.url}/-/api/v1/apps/tenant-a/functions/suicide/invoke",
        json={},
        headers={"authorization": f"Bearer {served.admin}"},
        timeout=60,
    )
    # kill(-1) spares the caller: its app zygote and other workers died, maybe the worker with them.
    assert killed.status_code == 200
    assert served.attack("whoami")["ok"]  # a new app zygote, in the same box
    b_after = served.hello()
    assert b_after["uid"] == b_before["uid"]
    assert served.server.process is not None
    assert served.server.process.poll() is None
