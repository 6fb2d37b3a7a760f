"""The systems the async benchmarks compare, each started fresh for a run and stopped after it.

    with dramatiq(work, durable=True, processes=2) as target:
        ...  # target.producer: what `benchmarks.producers` is told; target.settled(n): n tasks finished

- `triggerfish`: the platform in its own process (`triggerfish dev`, or the
  launcher's `platform` on a store URL), `benchmarks/apps/async_app.py`;
  producers call its HTTP API;
- `triggerfish_cluster`: `triggerfish serve --role gateway` and N
  `serve --role worker` nodes on one PostgreSQL schema; the app deployed
  with `triggerfish deploy`; producers call the gateway;
- `dramatiq`, `celery`: a Redis the benchmark starts (durable or not) and
  their worker command; producers use their clients.

A task finishing appends a byte to a file; `settled(n)` is true once n
bytes are there. The cluster's handlers may run in a box that cannot see
that file, so there `settled` asks the gateway whether the function's
queue is empty (every invocation acknowledged, its record written).
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.apps.async_app import DONE_FILE
from benchmarks.processes import Child, launcher, python_env, serve_on_free_port
from benchmarks.redis_server import redis_server

APPS = Path(__file__).resolve().parent / "apps"
APP_NAME = "bench-async"


@dataclass(frozen=True, slots=True)
class Target:
    """A started system: how producers reach it, and whether n tasks have finished."""

    producer: list[str]
    env: dict[str, str]
    settled: Callable[[int], bool]
    note: str = ""
    #: The platform's process, for a profiler (Triggerfish's single-process systems; else 0).
    pid: int = 0


def _bytes_in(path: Path) -> Callable[[int], bool]:
    def settled(count: int) -> bool:
        try:
            return path.stat().st_size >= count
        except FileNotFoundError:
            return count == 0

    return settled


def _app_dir(work: Path, done: Path | None) -> Path:
    """A copy of async_app.py as `app/app.py`, with the done file set for its functions (when given)."""
    directory = work / "app"
    directory.mkdir(parents=True)
    shutil.copy(APPS / "async_app.py", directory / "app.py")
    if done is not None:
        (directory / "triggerfish.toml").write_text(f'[functions."*"]\nenv = {{ {DONE_FILE} = "{done}" }}\n')
    return directory / "app.py"


@contextmanager
def triggerfish(work: Path, *, loop: str, store: str | None = None, any_core: bool = False) -> Iterator[Target]:
    """The platform on SQLite (`triggerfish dev`) or on the store at `store` (the launcher's `platform`); with
    `any_core`, its threads run on any core (`TRIGGERFISH_PLATFORM_CPU=off`) rather than together on one."""
    done = work / "done"
    app = _app_dir(work, done)

    def command(port: int) -> list[str]:
        if store is None:
            # --quiet: dev's per-invocation lines are for a person at a terminal, not part of what is measured.
            arguments = ["triggerfish", "dev", str(app), "--port", str(port), "--no-reload", "--quiet"]
        else:
            arguments = ["platform", str(app), "--port", str(port), "--store", store]
        return launcher(loop, *arguments, "--data-dir", str(work / "data"))

    health = "http://127.0.0.1:{}/-/health".format
    env = {**python_env(), "TRIGGERFISH_PLATFORM_CPU": "off"} if any_core else None
    child, port = serve_on_free_port(command, health, log=work / "platform.log", cwd=app.parent, env=env)
    with child:
        invoke = f"http://127.0.0.1:{port}/-/api/v1/functions/noop/invoke"
        yield Target(["http", invoke], python_env(), _bytes_in(done), pid=child.pid)


def _serve_options() -> tuple[list[str], str]:
    """Extra `serve` options, and what the report should say about them (isolation when it cannot box)."""
    help_text = subprocess.run(
        [sys.executable, "-m", "triggerfish", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=python_env(),
    ).stdout
    if "--no-isolation" in help_text and shutil.which("bwrap") is None:
        return ["--no-isolation"], "unboxed (`--no-isolation`: bubblewrap is not installed)"
    return [], ""


def _queue_empty(base: str, key: str) -> Callable[[int], bool]:
    """Whether the gateway sees the no-op's queue empty: every invocation run and acknowledged."""
    host, port = base.removeprefix("http://").split(":")

    def settled(count: int) -> bool:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            path = f"/-/api/v1/apps/{APP_NAME}/queues/fn.noop"
            connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
            answer = connection.getresponse()
            body = answer.read()
        finally:
            connection.close()
        if answer.status == 404:
            return count == 0
        if answer.status != 200:
            raise RuntimeError(f"GET {path}: {answer.status} {body[:300]!r}")
        stats = json.loads(body)["stats"]
        return bool(stats["visible"] == 0 and stats["in_flight"] == 0 and stats["delayed"] == 0)

    return settled


@contextmanager
def triggerfish_cluster(work: Path, *, store: str | None, workers: int, loop: str = "asyncio") -> Iterator[Target]:
    """`triggerfish serve` nodes on one store: a gateway and `workers` worker nodes (0: one node of every role).

    The app is deployed to the gateway with `triggerfish deploy`; worker nodes start after it, so they
    load it as they start. `store` None is the first node's own SQLite store (one node only).
    """
    options, note = _serve_options()
    if store is not None:
        options += ["--store", store]
    app = _app_dir(work, None)
    with ExitStack() as stack:

        def serve(name: str, *arguments: str) -> list[str]:
            return launcher(loop, "triggerfish", "serve", "--data-dir", str(work / name), *options, *arguments)

        role = "gateway" if workers else "all"
        gateway, port = serve_on_free_port(
            lambda port: serve("gateway", "--role", role, "--port", str(port)),
            "http://127.0.0.1:{}/-/health".format,
            log=work / "gateway.log",
        )
        stack.callback(gateway.stop)
        base = f"http://127.0.0.1:{port}"
        key = (work / "gateway" / "admin.key").read_text().strip()
        deploy = [sys.executable, "-m", "triggerfish", "deploy", str(app.parent), "--server", base, "--key", key]
        deployed = subprocess.run(deploy, capture_output=True, text=True, timeout=300, env=python_env())
        if deployed.returncode != 0:
            raise RuntimeError(f"triggerfish deploy failed: {deployed.stderr.strip() or deployed.stdout.strip()}")
        for number in range(1, workers + 1):
            # A node loads an app from the bundle in its own data directory, and nothing gives a node
            # the bundles deployed through another (docs/benchmarks.md): they share the gateway's here.
            (work / f"worker-{number}").mkdir()
            (work / f"worker-{number}" / "bundles").symlink_to(work / "gateway" / "bundles")
            name = f"worker-{number}"
            stack.enter_context(Child(serve(name, "--role", "worker"), log=work / f"{name}.log"))
        invoke = f"{base}/-/api/v1/apps/{APP_NAME}/functions/noop/invoke"
        yield Target(["http", invoke, "--key", key], python_env(), _queue_empty(base, key), note)


@contextmanager
def dramatiq(work: Path, *, durable: bool, processes: int) -> Iterator[Target]:
    done = work / "done"
    with redis_server(durable=durable, work=work) as url:
        env = python_env({"TFBENCH_REDIS_URL": url, "TFBENCH_DONE_FILE": str(done)})
        # Dramatiq's default of 8 threads per process (with 1 it is latency-bound: 3.5x slower here).
        command = [sys.executable, "-m", "dramatiq", "benchmarks.apps.async_dramatiq"]
        command += ["--processes", str(processes), "--threads", "8"]
        with Child(command, log=work / "dramatiq.log", env=env):
            yield Target(["dramatiq", "benchmarks.apps.async_dramatiq"], env, _bytes_in(done))


@contextmanager
def celery(work: Path, *, durable: bool, processes: int) -> Iterator[Target]:
    done = work / "done"
    with redis_server(durable=durable, work=work) as url:
        env = python_env({"TFBENCH_REDIS_URL": url, "TFBENCH_DONE_FILE": str(done)})
        command = [sys.executable, "-m", "celery", "-A", "benchmarks.apps.async_celery", "worker"]
        command += ["--pool", "prefork", "--concurrency", str(processes), "--loglevel", "WARNING"]
        command += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
        with Child(command, log=work / "celery.log", env=env):
            yield Target(["celery", "benchmarks.apps.async_celery"], env, _bytes_in(done))
