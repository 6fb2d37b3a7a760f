"""`triggerfish serve` as a team runs it: a real server process, apps deployed with the real CLI, keys
scoped to each app, invocations, canaries, rollbacks, and the faults the issue names."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.server.devserver import DevServer, poll

ROOT = Path(__file__).resolve().parent.parent.parent

APP = """
import time

import triggerfish

app = triggerfish.App({name!r})


@app.http("GET", "/hello")
def hello(event, context):
    return {{"app": {name!r}, "version": {version}}}


@app.http("GET", "/slow")
def slow(event, context):
    time.sleep(1.0)
    return {{"version": {version}}}


@app.function()
def work(event, context):
    context.send("done", str(event["n"]))
    return event["n"]
"""


def write_app(directory: Path, name: str, version: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.py").write_text(textwrap.dedent(APP).format(name=name, version=version))
    (directory / "triggerfish.toml").write_text(f'name = "{name}"\n')
    return directory


def cli(*args: str, server: str, key: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRIGGERFISH_SERVER": server, "TRIGGERFISH_KEY": key, "TRIGGERFISH_CONFIG": os.devnull}
    done = subprocess.run(
        [sys.executable, "-m", "triggerfish", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert done.returncode == 0, f"triggerfish {' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done


@dataclass
class Running:
    process: DevServer
    admin: str
    data_dir: Path

    @property
    def url(self) -> str:
        return self.process.url

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {key or self.admin}", "content-type": "application/json"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def start_server(data_dir: Path, admin: str | None = None) -> Running:
    process = DevServer("--port", "0", "--data-dir", str(data_dir), cwd=ROOT, verb="serve").start()
    if admin is None:
        line = next(line for line in process.lines if line.startswith("admin key"))
        admin = re.search(r"(tfk_\S+)", line).group(1)  # type: ignore[union-attr]
    return Running(process, admin, data_dir)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    server = start_server(tmp_path / "server")
    yield server
    server.process.stop()


def test_a_team_deploys_two_apps_with_scoped_keys_invokes_canaries_and_rolls_back(
    running: Running, tmp_path: Path
) -> None:
    shop, blog = write_app(tmp_path / "shop", "shop", 1), write_app(tmp_path / "blog", "blog", 1)
    first = json.loads(cli("deploy", str(shop), "--json", server=running.url, key=running.admin).stdout)
    assert first["version"] == 1
    cli("deploy", str(blog), server=running.url, key=running.admin)

    made = cli(
        "keys",
        "create",
        "--name",
        "shop ci",
        "--role",
        "deployer",
        "--app",
        "shop",
        "--json",
        server=running.url,
        key=running.admin,
    )
    shop_key = json.loads(made.stdout)["key"]
    blog_key = json.loads(
        cli(
            "keys",
            "create",
            "--name",
            "blog ci",
            "--role",
            "deployer",
            "--app",
            "blog",
            "--json",
            server=running.url,
            key=running.admin,
        ).stdout
    )["key"]

    invoked = cli("invoke", "work", "--app", "shop", "-d", '{"n": 7}', server=running.url, key=shop_key)
    assert invoked.stdout.strip() == "7"
    refused = cli("invoke", "work", "--app", "shop", "-d", '{"n": 7}', server=running.url, key=blog_key, check=False)
    assert refused.returncode != 0
    assert "AppNotFound" in refused.stderr or "no app named 'shop'" in refused.stderr

    # A new version, first as a canary taking half of the requests, then promoted, then rolled back.
    second = json.loads(
        cli("deploy", str(write_app(shop, "shop", 2)), "--json", server=running.url, key=shop_key).stdout
    )
    assert second["version"] == 2
    assert second["functions"]["changed"] == ["hello", "slow"]
    assert second["functions"]["unchanged"] == ["work"]
    with running.http(shop_key) as http:
        split = http.put("/-/api/v1/apps/shop/aliases/live", json={"version": 1, "weights": {"2": 0.5}})
        assert split.status_code == 200, split.text
        seen = [http.get("/shop/hello").json()["version"] for _ in range(100)]
        assert 15 < seen.count(2) < 85
        http.put("/-/api/v1/apps/shop/aliases/live", json={"version": 2})
        assert http.get("/shop/hello").json()["version"] == 2
    cli("rollback", "shop", server=running.url, key=shop_key)
    with running.http() as http:
        assert http.get("/shop/hello").json()["version"] == 1
        assert http.get("/blog/hello").json() == {"app": "blog", "version": 1}
    listed = json.loads(cli("list", "--json", server=running.url, key=shop_key).stdout)
    assert [app["name"] for app in listed["apps"]] == ["shop"]


def test_a_deploy_while_requests_are_in_flight_fails_none_and_each_finishes_on_its_version(
    running: Running, tmp_path: Path
) -> None:
    shop = write_app(tmp_path / "shop", "shop", 1)
    cli("deploy", str(shop), server=running.url, key=running.admin)
    answers: list[httpx.Response] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=running.url, timeout=30) as http:
            while not stop.is_set():
                answers.append(http.get("/shop/hello"))

    slow: list[httpx.Response] = []
    slow_request = threading.Thread(target=lambda: slow.append(httpx.get(f"{running.url}/shop/slow", timeout=30)))
    loaders = [threading.Thread(target=load) for _ in range(3)]
    for thread in loaders:
        thread.start()
    slow_request.start()
    try:
        cli("deploy", str(write_app(shop, "shop", 2)), server=running.url, key=running.admin)
        after = len(answers)
        poll(lambda: len(answers) > after + 20)
    finally:
        stop.set()
        for thread in loaders:
            thread.join()
        slow_request.join()
    assert answers
    assert {a.status_code for a in answers} == {200}
    versions = [a.json()["version"] for a in answers]
    assert set(versions) <= {1, 2}
    assert versions[-1] == 2
    assert slow[0].json() == {"version": 1}


def test_an_interrupted_upload_publishes_nothing(running: Running, tmp_path: Path) -> None:
    from triggerfish.deploy.bundle import pack

    bundle = pack(write_app(tmp_path / "shop", "shop", 1))
    host, port = running.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        head = (
            f"PUT /-/api/v1/apps/shop/bundles/{bundle.sha256} HTTP/1.1\r\nhost: x\r\n"
            f"authorization: Bearer {running.admin}\r\ncontent-type: application/gzip\r\n"
            f"content-length: {len(bundle.data)}\r\n\r\n"
        )
        sock.sendall(head.encode() + bundle.data[: len(bundle.data) // 2])
    with running.http() as http:
        poll(lambda: http.get("/-/health").status_code == 200)
        assert http.head(f"/-/api/v1/apps/shop/bundles/{bundle.sha256}").status_code == 404
        deploy = http.post("/-/api/v1/apps/shop/deploys", json={"bundle": bundle.sha256})
        assert deploy.status_code == 400
        assert http.get("/-/api/v1/apps").json()["apps"] == []


def test_a_revoked_key_is_refused_from_the_next_request_of_a_stream(running: Running, tmp_path: Path) -> None:
    cli("deploy", str(write_app(tmp_path / "shop", "shop", 1)), server=running.url, key=running.admin)
    with running.http() as admin:
        made = admin.post("/-/api/v1/keys", json={"name": "reader", "role": "viewer", "app": "shop"}).json()
    statuses: list[int] = []
    stop = threading.Event()

    def stream() -> None:
        with running.http(made["key"]) as http:
            while not stop.is_set():
                statuses.append(http.get("/-/api/v1/apps/shop/functions").status_code)

    reader = threading.Thread(target=stream)
    reader.start()
    try:
        poll(lambda: len(statuses) > 10)
        with running.http() as admin:
            assert admin.delete(f"/-/api/v1/keys/{made['id']}").status_code == 200
        count = len(statuses)
        poll(lambda: len(statuses) > count + 10)
    finally:
        stop.set()
        reader.join()
    # Every answer is 200 up to the revocation and 401 from the first request after it.
    first_refusal = statuses.index(401)
    assert set(statuses[:first_refusal]) == {200}
    assert set(statuses[first_refusal:]) == {401}
    assert first_refusal <= count + 1


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_queued_and_in_flight_async_work_completes_after_a_stop_under_load(tmp_path: Path, how: signal.Signals) -> None:
    data = tmp_path / "server"
    server = start_server(data)
    acked: list[int] = []
    try:
        cli("deploy", str(write_app(tmp_path / "shop", "shop", 1)), server=server.url, key=server.admin)
        stop = threading.Event()

        def load(offset: int) -> None:
            with server.http() as http:
                n = offset
                while not stop.is_set():
                    try:
                        answer = http.post(
                            "/-/api/v1/apps/shop/functions/work/invoke", params={"type": "event"}, json={"n": n}
                        )
                    except httpx.HTTPError:
                        return
                    if answer.status_code == 202:
                        acked.append(n)
                    n += 4

        loaders = [threading.Thread(target=load, args=(i,)) for i in range(4)]
        for thread in loaders:
            thread.start()
        poll(lambda: len(acked) >= 200, timeout=60)
        assert server.process.process is not None
        if how == signal.SIGKILL:
            os.killpg(server.process.process.pid, signal.SIGKILL)
        else:
            server.process.process.send_signal(signal.SIGTERM)
        code = server.process.process.wait(60)
        stop.set()
        for thread in loaders:
            thread.join()
        assert code == (0 if how == signal.SIGTERM else -signal.SIGKILL)
    finally:
        server.process.stop()

    restarted = start_server(data, admin=server.admin)
    try:
        with restarted.http() as http:
            done: set[int] = set()

            def all_done() -> bool:
                answer = http.post("/-/api/v1/apps/shop/queues/done/receive", json={"max": 10})
                assert answer.status_code == 200, answer.text
                messages = answer.json()["messages"]
                done.update(int(message["body"]) for message in messages)
                if messages:
                    receipts = [message["receipt"] for message in messages]
                    http.post("/-/api/v1/apps/shop/queues/done/ack", json={"receipts": receipts})
                return set(acked) <= done

            try:
                poll(all_done, timeout=120, interval=0.2)
            except AssertionError:
                missing = sorted(set(acked) - done)
                raise AssertionError(
                    f"{len(missing)} of {len(acked)} acknowledged invocations never ran: {missing[:20]}"
                ) from None
    finally:
        restarted.process.stop()
