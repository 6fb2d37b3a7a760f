"""Dependencies: requirements are installed once per distinct text with pip's output kept; a failed or
stuck install leaves no cache entry and says why; an app then imports what was installed."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.deploy.packages import local_package
from tests.runtime.conftest import eventually, request
from triggerfish.deploy.deps import LOG_FILE, Dependencies, normalise_requirements, requirements_key
from triggerfish.errors import DeployError
from triggerfish.runtime.process_runner import ProcessRunner

OFFLINE = ["--no-index"]


def _app_dir(tmp_path: Path, requirements: str) -> Path:
    app_dir = tmp_path / "app"
    local_package(app_dir / "vendor" / "tinylib", "tinylib", "GREETING = 'hello from tinylib'\n")
    (app_dir / "requirements.txt").write_text(requirements, encoding="utf-8")
    return app_dir


def _entries(root: Path) -> list[str]:
    tag = root / sys.implementation.cache_tag
    return sorted(p.name for p in tag.iterdir()) if tag.exists() else []


async def test_requirements_are_installed_once_and_reused_by_the_same_text(tmp_path: Path) -> None:
    app_dir = _app_dir(tmp_path, "# vendored\n./vendor/tinylib\n")
    deps = Dependencies(tmp_path / "deps", extra_args=OFFLINE)
    # Two deploys with the same requirements at once: one install, the other waits for it.
    first, second = await asyncio.gather(
        deps.ensure(app_dir / "requirements.txt"), deps.ensure(app_dir / "requirements.txt")
    )
    assert sorted([first.cached, second.cached]) == [False, True]
    assert first.path == second.path
    assert first.path is not None
    assert (first.path / "tinylib" / "__init__.py").read_text(encoding="utf-8") == "GREETING = 'hello from tinylib'\n"
    assert "Successfully installed tinylib-1.0" in first.output
    assert second.output == first.output
    assert (first.path.parent / LOG_FILE).read_text(encoding="utf-8") == first.output
    assert first.key == requirements_key("./vendor/tinylib\n")
    assert first.path.parent.name == first.key

    # Another app whose file says the same with other comments and spacing reuses the install.
    other = tmp_path / "other"
    other.mkdir()
    (other / "requirements.txt").write_text("\r\n  ./vendor/tinylib   # pinned by path\r\n\r\n", encoding="utf-8")
    again = await deps.ensure(other / "requirements.txt")
    assert again.cached
    assert again.path == first.path
    assert again.output == first.output
    assert _entries(tmp_path / "deps") == [first.key]


async def test_an_app_imports_what_was_installed_for_it(tmp_path: Path) -> None:
    app_dir = _app_dir(tmp_path, "./vendor/tinylib\n")
    (app_dir / "app.py").write_text(
        "import tinylib\nimport triggerfish\n\napp = triggerfish.App('greeter')\n\n\n"
        "@app.function()\ndef greet(event, context):\n    return tinylib.GREETING\n",
        encoding="utf-8",
    )
    result = await Dependencies(tmp_path / "deps", extra_args=OFFLINE).ensure(app_dir / "requirements.txt")
    assert result.path is not None
    runner = await ProcessRunner.start(
        str(app_dir / "app.py"), work_dir=tmp_path / "work", extra_paths=[str(result.path)]
    )
    try:
        outcome = await runner.run(request("greet"))
    finally:
        await runner.close()
    assert outcome.ok, outcome.error
    assert outcome.result == "hello from tinylib"


async def test_a_failed_install_raises_with_pips_output_and_caches_nothing(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "requirements.txt").write_text("no-such-package-triggerfish-test==9.9.9\n", encoding="utf-8")
    deps = Dependencies(tmp_path / "deps", extra_args=OFFLINE)
    with pytest.raises(DeployError, match=r"pip could not install requirements\.txt") as caught:
        await deps.ensure(app_dir / "requirements.txt")
    assert caught.value.phase == "install"
    assert "no-such-package-triggerfish-test==9.9.9" in caught.value.details
    assert "ERROR" in caught.value.details
    assert _entries(tmp_path / "deps") == []
    # Nothing was cached, so the next attempt runs pip again (and fails the same way).
    with pytest.raises(DeployError):
        await deps.ensure(app_dir / "requirements.txt")


async def test_an_install_that_does_not_finish_in_time_raises_and_caches_nothing(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    package = local_package(app_dir / "stuck", "stuck", "", hang=True)
    (app_dir / "requirements.txt").write_text("./stuck\n", encoding="utf-8")
    deps = Dependencies(tmp_path / "deps", extra_args=OFFLINE, timeout=1.0)
    with pytest.raises(DeployError, match=r"did not finish installing requirements\.txt within 1 s") as caught:
        await deps.ensure(app_dir / "requirements.txt")
    assert caught.value.phase == "install"
    assert _entries(tmp_path / "deps") == []
    if (package / "builder.pid").exists():  # pip got as far as the build: it was stopped too
        pid = int((package / "builder.pid").read_text(encoding="ascii"))
        await eventually(lambda: not _alive(pid), 10.0)
        assert not _alive(pid)


async def test_a_cancelled_install_stops_pip_and_its_build_and_caches_nothing(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    package = local_package(app_dir / "stuck", "stuck", "", hang=True)
    (app_dir / "requirements.txt").write_text("./stuck\n", encoding="utf-8")
    deps = Dependencies(tmp_path / "deps", extra_args=OFFLINE)
    task = asyncio.ensure_future(deps.ensure(app_dir / "requirements.txt"))
    pid_file = package / "builder.pid"
    await eventually(lambda: pid_file.exists() and pid_file.read_text(encoding="ascii").isdigit(), 30.0)
    pid = int(pid_file.read_text(encoding="ascii"))
    assert _alive(pid)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: not _alive(pid), 10.0)
    assert not _alive(pid)
    assert _entries(tmp_path / "deps") == []


@pytest.mark.parametrize("text", [None, "missing", "# only a comment\n\n   \n"])
async def test_no_requirements_means_nothing_to_put_on_the_path(tmp_path: Path, text: str | None) -> None:
    deps = Dependencies(tmp_path / "deps")
    if text is None:
        result = await deps.ensure(None)
    elif text == "missing":
        result = await deps.ensure(tmp_path / "requirements.txt")
    else:
        (tmp_path / "requirements.txt").write_text(text, encoding="utf-8")
        result = await deps.ensure(tmp_path / "requirements.txt")
    assert result.path is None
    assert result.key is None
    assert not (tmp_path / "deps").exists()


def test_the_key_ignores_comments_spacing_and_line_endings_but_not_pins() -> None:
    plain = "orjson==3.10.0\nhttpx>=0.27\n"
    assert normalise_requirements("  orjson==3.10.0  # fast json\r\n\r\n# tools\nhttpx\\\n>=0.27\n") == plain
    assert requirements_key(plain) == requirements_key("orjson==3.10.0\n\n\nhttpx>=0.27")
    assert requirements_key(plain) != requirements_key("orjson==3.10.1\nhttpx>=0.27\n")
    # A '#' that is part of a URL fragment (no space before it) is not a comment.
    assert normalise_requirements("pkg @ https://example.invalid/p.zip#sha256=ab\n") == (
        "pkg @ https://example.invalid/p.zip#sha256=ab\n"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its parent is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
