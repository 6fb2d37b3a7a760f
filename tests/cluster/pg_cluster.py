"""Real `triggerfish serve` nodes on a real PostgreSQL database of their own, for the cluster's fault tests."""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests import patience
from tests.server.devserver import DevServer
from tests.services import POSTGRES_URL
from triggerfish.deploy.bundle import pack


@contextlib.contextmanager
def fresh_database() -> Iterator[tuple[str, str]]:
    """A PostgreSQL database of the test's own: (its name, its store URL); dropped after, connections and all."""
    import psycopg
    from psycopg import sql

    name = f"tf_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(POSTGRES_URL)
    try:
        yield name, urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def cut_database(name: str) -> None:
    """What a database restart looks like to the nodes: every connection cut, no new one taken."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


def restore_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))


class Node:
    """One `triggerfish serve` process of the cluster, with an HTTP client holding a key."""

    def __init__(self, directory: Path, store: str, *, role: str = "all", config: str = "") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        settings = directory / "serve.toml"
        settings.write_text(textwrap.dedent(config))
        self.directory = directory
        self.server = DevServer(
            "--port", "0", "--store", store, "--data-dir", str(directory / "data"), "--role", role,
            "--config", str(settings), cwd=directory, verb="serve",
        )  # fmt: skip
        self.http: httpx.Client | None = None

    def start(self, key: str | None = None) -> Node:
        self.server.start(timeout=60)
        if key is None:
            key = (self.directory / "data" / "admin.key").read_text().strip()
        self.http = httpx.Client(base_url=self.server.url, headers={"authorization": f"Bearer {key}"}, timeout=30)
        return self

    @property
    def client(self) -> httpx.Client:
        assert self.http is not None
        return self.http

    def kill(self) -> None:
        """SIGKILL the node and everything it started (its zygotes and workers): no drain, no goodbye."""
        process = self.server.process
        assert process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        self.server.stop()

    def deploy(self, app: str, directory: Path) -> httpx.Response:
        bundle = pack(directory)
        base = f"/-/api/v1/apps/{app}"
        gzip = {"content-type": "application/gzip"}
        stored = self.client.put(f"{base}/bundles/{bundle.sha256}", content=bundle.data, headers=gzip)
        assert stored.status_code in (200, 201), stored.text
        return self.client.post(f"{base}/deploys", json={"bundle": bundle.sha256})

    def publish(self, app: str, events: list[dict[str, Any]]) -> httpx.Response:
        return self.client.post(
            f"/-/apps/{app}/events",
            content=_batch(events),
            headers={"content-type": "application/cloudevents-batch+json"},
        )


def _batch(events: list[dict[str, Any]]) -> bytes:
    import orjson

    return orjson.dumps(events)


def eventually(check: Callable[[], bool], within: float, what: str) -> float:
    """Seconds until `check()` held; AssertionError naming `what` when it did not within `within` s (stretched by
    load: tests/patience.py)."""
    started = time.monotonic()
    patience.eventually(check, within, what)
    return time.monotonic() - started


def write_app(directory: Path, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.py").write_text(textwrap.dedent(source))
    return directory
