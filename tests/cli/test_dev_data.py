"""`triggerfish dev` keeps each app's data in a directory of its own, and one `dev` at a time uses it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.server.devserver import DevServer
from triggerfish.cli.data_lock import DataDirBusy, DataDirLock
from triggerfish.cli.project import local_app

APP = """\
import triggerfish

app = triggerfish.App({name!r})


@app.function
def {function}(event, context):
    return {{"from": {name!r}}}
"""


def make_app(root: Path, directory: str, name: str, function: str) -> Path:
    (root / directory).mkdir()
    path = root / directory / "app.py"
    path.write_text(APP.format(name=name, function=function))
    return path


def invocations(url: str) -> list[str]:
    answer = httpx.get(f"{url}/-/api/v1/invocations", timeout=10)
    assert answer.status_code == 200, answer.text
    return [record["function"] for record in answer.json()["invocations"]]


def test_two_apps_run_from_one_directory_see_only_their_own_records(tmp_path: Path) -> None:
    make_app(tmp_path, "shop", "shop", "place_order")
    make_app(tmp_path, "greeter", "greeter", "hello")
    shop = DevServer("shop/app.py", "--port", "0", "--no-reload", cwd=tmp_path).start()
    try:
        assert httpx.post(f"{shop.url}/-/api/v1/functions/place_order/invoke", json={}, timeout=30).status_code == 200
        assert invocations(shop.url) == ["place_order"]
    finally:
        shop.stop()
    greeter = DevServer("greeter/app.py", "--port", "0", "--no-reload", cwd=tmp_path).start()
    try:
        assert invocations(greeter.url) == []
        assert httpx.post(f"{greeter.url}/-/api/v1/functions/hello/invoke", json={}, timeout=30).status_code == 200
        assert invocations(greeter.url) == ["hello"]
    finally:
        greeter.stop()
    assert (tmp_path / ".triggerfish" / "shop" / "store.db").is_file()
    assert (tmp_path / ".triggerfish" / "greeter" / "store.db").is_file()


def test_a_second_dev_on_one_data_directory_is_refused_until_the_first_dies_even_by_kill_9(tmp_path: Path) -> None:
    make_app(tmp_path, "greeter", "greeter", "hello")
    first = DevServer("greeter", "--port", "0", "--no-reload", cwd=tmp_path).start()
    try:
        second = subprocess.run(
            [sys.executable, "-m", "triggerfish", "dev", "greeter/app.py", "--port", "0"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert second.stderr.strip() == (
            f"error: {Path('.triggerfish/greeter')} is in use by process {first.process.pid} (another"  # type: ignore[union-attr]
            " `triggerfish dev` of this app?); stop that one, or give this one a data directory of its own with"
            " --data-dir"
        )
        assert first.process is not None
        os.killpg(first.process.pid, signal.SIGKILL)
        first.wait()
    finally:
        first.stop()
    again = DevServer("greeter/app.py", "--port", "0", "--no-reload", cwd=tmp_path).start()
    try:
        assert httpx.post(f"{again.url}/-/api/v1/functions/hello/invoke", json={}, timeout=30).json() == {
            "from": "greeter"
        }
    finally:
        again.stop()


def test_the_lock_is_released_by_release_and_refused_while_held(tmp_path: Path) -> None:
    held = DataDirLock(tmp_path / "data")
    held.acquire()
    # flock locks belong to open files: a second open in this process is refused as another process would be.
    with pytest.raises(DataDirBusy) as refused:
        DataDirLock(tmp_path / "data").acquire()
    assert refused.value.holder == str(os.getpid())
    held.release()
    again = DataDirLock(tmp_path / "data")
    again.acquire()
    again.release()


def test_the_app_name_and_data_directory_come_from_the_project_without_importing_it(tmp_path: Path) -> None:
    os.chdir(tmp_path)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "main.py").write_text(
        "raise SystemExit('imported')\nimport triggerfish\napp = triggerfish.App('web')\n"
    )
    (tmp_path / "site" / "triggerfish.toml").write_text('app = "main.py:app"\n')
    assert local_app("site") == local_app("site", None)
    found = local_app("site")
    assert found.target == f"{(tmp_path / 'site' / 'main.py').resolve()}:app"
    assert found.name == "web"
    assert found.data_dir == Path(".triggerfish/web")
    (tmp_path / "site" / "triggerfish.toml").write_text('name = "portal"\napp = "main.py"\n')
    assert local_app("site/main.py").name == "portal"
    assert local_app("site").target == str((tmp_path / "site" / "main.py").resolve())
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "app.py").write_text("import triggerfish\napp = triggerfish.App(name)\n")
    assert local_app("plain/app.py").name == "plain"
    assert local_app("shop.api:app").name == "api"
