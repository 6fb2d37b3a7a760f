"""Dependencies: requirements are checked before pip runs, installed once per app and distinct text with pip's
output kept (and capped); pip gets the server's options, never the app's, and builds no source distribution
unless the server allows it; a failed or stuck install leaves no cache entry and says why."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.deploy.packages import sdist, wheel
from tests.runtime.conftest import eventually, request
from triggerfish.deploy.deps import LOG_FILE, Dependencies, KeptOutput, normalise_requirements, requirements_key
from triggerfish.errors import DeployError, RequirementsError
from triggerfish.runtime.process_runner import ProcessRunner


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """A local package index (a --find-links directory) holding the wheel of `tinylib`."""
    directory = tmp_path / "index"
    wheel(directory, "tinylib", "GREETING = 'hello from tinylib'\n")
    return directory


def offline(index: Path) -> list[str]:
    return ["--no-index", "--find-links", str(index)]


def _requirements(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "requirements.txt"
    path.write_text(text, encoding="utf-8")
    return path


def _entries(deps: Dependencies, app: str) -> list[str]:
    tag = deps.directory(app, "x").parent
    return sorted(p.name for p in tag.iterdir()) if tag.exists() else []


async def test_requirements_are_installed_once_per_app_and_reused_by_the_same_text(tmp_path: Path, index: Path) -> None:
    requirements = _requirements(tmp_path / "app", "# pinned\ntinylib==1.0\n")
    deps = Dependencies(tmp_path / "deps", extra_args=offline(index))
    # Two deploys with the same requirements at once: one install, the other waits for it.
    first, second = await asyncio.gather(deps.ensure("shop", requirements), deps.ensure("shop", requirements))
    assert sorted([first.cached, second.cached]) == [False, True]
    assert first.path == second.path
    assert first.path is not None
    assert (first.path / "tinylib" / "__init__.py").read_text(encoding="utf-8") == "GREETING = 'hello from tinylib'\n"
    assert "Successfully installed tinylib-1.0" in first.output
    assert second.output == first.output
    assert (first.path.parent / LOG_FILE).read_text(encoding="utf-8") == first.output
    assert first.key == requirements_key("tinylib==1.0\n")
    assert first.path.parent == deps.directory("shop", first.key)

    # The same text with other comments and spacing reuses the install...
    same = _requirements(tmp_path / "other", "\r\n  tinylib==1.0   # by name\r\n\r\n")
    again = await deps.ensure("shop", same)
    assert again.cached
    assert again.path == first.path
    # ...but only for the same app: another app's installs are its own.
    blog = await deps.ensure("blog", same)
    assert not blog.cached
    assert blog.path is not None
    assert blog.path != first.path
    assert _entries(deps, "shop") == _entries(deps, "blog") == [first.key]


async def test_pip_is_given_the_servers_rendering_of_the_accepted_lines(tmp_path: Path, index: Path) -> None:
    requirements = _requirements(tmp_path / "app", "TinyLib >= 0.9 , < 2 \\\n ; python_version >= '3'  # spaced\n")
    result = await Dependencies(tmp_path / "deps", extra_args=offline(index)).ensure("shop", requirements)
    assert result.path is not None
    given = (result.path.parent / "requirements.txt").read_text(encoding="utf-8")
    assert given == 'TinyLib<2,>=0.9; python_version >= "3"\n'


async def test_an_app_imports_what_was_installed_for_it(tmp_path: Path, index: Path) -> None:
    app_dir = tmp_path / "app"
    requirements = _requirements(app_dir, "tinylib\n")
    (app_dir / "app.py").write_text(
        "import tinylib\nimport triggerfish\n\napp = triggerfish.App('greeter')\n\n\n"
        "@app.function()\ndef greet(event, context):\n    return tinylib.GREETING\n",
        encoding="utf-8",
    )
    result = await Dependencies(tmp_path / "deps", extra_args=offline(index)).ensure("greeter", requirements)
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


async def test_a_failed_install_raises_with_pips_output_and_caches_nothing(tmp_path: Path, index: Path) -> None:
    requirements = _requirements(tmp_path / "app", "no-such-package-triggerfish-test==9.9.9\n")
    deps = Dependencies(tmp_path / "deps", extra_args=offline(index))
    with pytest.raises(DeployError, match=r"pip could not install requirements\.txt") as caught:
        await deps.ensure("shop", requirements)
    assert caught.value.phase == "install"
    assert "no-such-package-triggerfish-test==9.9.9" in caught.value.details
    assert "ERROR" in caught.value.details
    assert _entries(deps, "shop") == []
    # Nothing was cached, so the next attempt runs pip again (and fails the same way).
    with pytest.raises(DeployError):
        await deps.ensure("shop", requirements)


async def test_the_servers_environment_does_not_choose_the_index(
    tmp_path: Path, index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pip runs --isolated: PIP_* variables (and user configuration) are not read, so only the server's
    # extra_args decide where packages come from.
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("PIP_NO_INDEX", "0")
    requirements = _requirements(tmp_path / "app", "tinylib==1.0\n")
    deps = Dependencies(tmp_path / "deps", extra_args=["--no-index"])
    with pytest.raises(DeployError, match="pip could not install") as caught:
        await deps.ensure("shop", requirements)
    assert "No matching distribution found for tinylib==1.0" in caught.value.details
    assert "--isolated" in deps.pip_options()
    assert "--no-cache-dir" in deps.pip_options()


async def test_source_distributions_are_not_built_unless_the_server_allows_it(tmp_path: Path) -> None:
    marker = tmp_path / "built"
    index = tmp_path / "index"
    sdist(index, "buildme", "BUILT = True\n", marker=marker)
    requirements = _requirements(tmp_path / "app", "buildme==1.0\n")
    wheels_only = Dependencies(tmp_path / "deps", extra_args=offline(index))
    with pytest.raises(DeployError) as caught:
        await wheels_only.ensure("shop", requirements)
    assert "No matching distribution found for buildme==1.0" in caught.value.details
    assert not marker.exists()  # the package's build code never ran

    builds = Dependencies(tmp_path / "deps", extra_args=offline(index), source_builds=True)
    result = await builds.ensure("shop", requirements)
    assert result.path is not None
    assert (result.path / "buildme" / "__init__.py").is_file()
    assert marker.read_text(encoding="ascii").isdigit()  # it did, with the server's user: the trade-off


REFUSED = {
    "include": ("-r ../../admin.key\n", "line 1: '-r ../../admin.key' uses -r, which includes another file"),
    "include-glued": ("-r/etc/passwd\n", "uses -r, which includes another file"),
    "constraint": ("tinylib\n-c constraints.txt\n", "line 2: '-c constraints.txt' uses -c"),
    "editable": ("-e .\n", "uses -e, which is an editable install"),
    "index-url": ("--index-url https://evil.example/simple\ntinylib\n", "uses --index-url, which chooses where"),
    "extra-index": ("--extra-index-url=https://evil.example/simple\n", "uses --extra-index-url"),
    "find-links": ("-f /srv/wheels\n", "uses -f, which chooses where packages come from"),
    "trusted-host": ("--trusted-host evil.example\n", "uses --trusted-host"),
    "pre": ("--pre\ntinylib\n", "uses --pre, which is a pip option"),
    "other-option": ("tinylib --config-settings=x=y\n", "uses --config-settings, which is a pip option"),
    "relative-path": ("./vendor/tinylib\n", "'./vendor/tinylib' is a local path"),
    "absolute-path": ("/opt/pkgs/tinylib\n", "is a local path"),
    "home-path": ("~/tinylib\n", "is a local path"),
    "file-url": ("file:///etc/passwd\n", "is a local file URL"),
    "named-file-url": ("tinylib @ file:///opt/tinylib\n", "installs tinylib from a local file URL"),
    "archive": ("tinylib-1.0.tar.gz\n", "names a package file"),
    "wheel-file": ("tinylib-1.0-py3-none-any.whl\n", "names a package file"),
    "direct-url": ("tinylib @ https://evil.example/tinylib.whl\n", "installs tinylib from a URL"),
    "plain-url": ("https://evil.example/tinylib.whl\n", "is a direct URL"),
    "vcs": ("git+https://evil.example/tinylib.git\n", "is a VCS URL"),
    "named-vcs": ("tinylib @ git+https://evil.example/t.git\n", "installs tinylib from a VCS URL"),
    "continuation": ("tinylib \\\n-r ../../admin.key\n", "line 1-2: 'tinylib -r ../../admin.key' uses -r"),
    "continued-hash-then-option": (
        "tinylib \\\n  --hash=sha256:" + "a" * 64 + " \\\n  --index-url=https://evil.example\n",
        "uses --index-url",
    ),
    "variable": ("tinylib==${ADMIN_KEY}\n", "refers to an environment variable"),
    "variable-in-marker": ("tinylib; python_version == '${SECRET}'\n", "refers to an environment variable"),
    "weak-hash": ("tinylib --hash=md5:" + "a" * 32 + "\n", "a hash is sha256:, sha384: or sha512:"),
    "short-hash": ("tinylib --hash=sha256:abc\n", "a hash is sha256:"),
    "hash-alone": ("--hash=sha256:" + "a" * 64 + "\n", "has a --hash but no requirement"),
    "nonsense": ("tinylib is great!\n", "is not a requirement specifier"),
    "control-character": ("tinylib\x1b[2J\n", "holds a control character"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_a_refused_line_fails_before_pip_runs_naming_the_file_line_and_reason(tmp_path: Path, case: str) -> None:
    text, reason = REFUSED[case]
    requirements = _requirements(tmp_path / "app", text)
    deps = Dependencies(tmp_path / "deps", extra_args=["--no-index"])
    with pytest.raises(RequirementsError) as caught:
        await deps.ensure("shop", requirements)
    message = str(caught.value)
    assert message.startswith("requirements.txt: 1 line refused")
    assert reason in message
    assert caught.value.phase == "install"
    assert caught.value.problems
    assert not (tmp_path / "deps").exists()  # pip never ran: it would have made its directory


async def test_every_refused_line_is_listed_and_the_good_ones_are_not(tmp_path: Path) -> None:
    text = "tinylib==1.0\n-r a.txt\norjson>=3  # fine\n./pkg\n" + "".join(f"--opt{i}\n" for i in range(30))
    with pytest.raises(RequirementsError) as caught:
        await Dependencies(tmp_path / "deps").ensure("shop", _requirements(tmp_path / "app", text))
    assert [line for line, _ in caught.value.problems[:3]] == [2, 4, 5]
    assert len(caught.value.problems) == 32
    assert str(caught.value).startswith("requirements.txt: 32 lines refused")
    assert "... and 12 more" in str(caught.value)
    assert "tinylib==1.0" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"tinylib\n\xff\xfe\n", "cannot be read as UTF-8 text"),
        (b"tinylib\n" * 40_000, "over the limit of 262144"),
    ],
    ids=["not-utf8", "too-large"],
)
async def test_an_unreadable_or_huge_file_is_refused_before_pip(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "requirements.txt").write_bytes(content)
    with pytest.raises(DeployError, match=message) as caught:
        await Dependencies(tmp_path / "deps").ensure("shop", tmp_path / "app" / "requirements.txt")
    assert caught.value.phase == "install"
    assert not (tmp_path / "deps").exists()


async def test_hashed_requirements_as_pip_compile_writes_them_are_accepted(tmp_path: Path, index: Path) -> None:
    import hashlib

    digest = hashlib.sha256((index / "tinylib-1.0-py3-none-any.whl").read_bytes()).hexdigest()
    text = (
        f"# generated\ntinylib==1.0 \\\n    --hash=sha256:{digest.upper()} \\\n    --hash sha256:{'0' * 64}\n"
        "    # via app\n"
    )
    result = await Dependencies(tmp_path / "deps", extra_args=offline(index)).ensure(
        "shop", _requirements(tmp_path / "app", text)
    )
    assert result.path is not None
    given = (result.path.parent / "requirements.txt").read_text(encoding="utf-8")
    assert given == f"tinylib==1.0 --hash=sha256:{digest} --hash=sha256:{'0' * 64}\n"


async def test_pip_checks_the_hashes_it_is_given(tmp_path: Path, index: Path) -> None:
    text = f"tinylib==1.0 --hash=sha256:{'0' * 64}\n"
    with pytest.raises(DeployError, match="pip could not install") as caught:
        await Dependencies(tmp_path / "deps", extra_args=offline(index)).ensure(
            "shop", _requirements(tmp_path / "app", text)
        )
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in caught.value.details


async def test_an_install_that_does_not_finish_in_time_raises_and_caches_nothing(tmp_path: Path) -> None:
    index, pid_file = tmp_path / "index", tmp_path / "builder.pid"
    sdist(index, "stuck", "", marker=pid_file, hang=True)
    deps = Dependencies(tmp_path / "deps", extra_args=offline(index), timeout=1.0, source_builds=True)
    with pytest.raises(DeployError, match=r"did not finish installing requirements\.txt within 1 s") as caught:
        await deps.ensure("shop", _requirements(tmp_path / "app", "stuck\n"))
    assert caught.value.phase == "install"
    assert _entries(deps, "shop") == []
    if pid_file.exists() and pid_file.read_text(encoding="ascii").isdigit():  # pip got as far as the build
        pid = int(pid_file.read_text(encoding="ascii"))
        await eventually(lambda: not _alive(pid), 10.0)
        assert not _alive(pid)


async def test_a_cancelled_install_stops_pip_and_its_build_and_caches_nothing(tmp_path: Path) -> None:
    index, pid_file = tmp_path / "index", tmp_path / "builder.pid"
    sdist(index, "stuck", "", marker=pid_file, hang=True)
    deps = Dependencies(tmp_path / "deps", extra_args=offline(index), source_builds=True)
    task = asyncio.ensure_future(deps.ensure("shop", _requirements(tmp_path / "app", "stuck\n")))
    await eventually(lambda: pid_file.exists() and pid_file.read_text(encoding="ascii").isdigit(), 30.0)
    pid = int(pid_file.read_text(encoding="ascii"))
    assert _alive(pid)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: not _alive(pid), 10.0)
    assert not _alive(pid)
    assert _entries(deps, "shop") == []


async def test_pips_output_is_capped_keeping_its_start_and_its_end(tmp_path: Path, index: Path) -> None:
    kept = KeptOutput(1000)
    kept.add(b"start " + b"." * 5000)
    kept.add(b"x" * 5000 + b" the end")
    text = kept.text()
    assert text.startswith("start ")
    assert text.endswith(" the end")
    assert "[... 9014 bytes of output left out ...]" in text
    assert len(text.encode()) < 1100

    # Through a real failing install: the error's details are within the cap.
    many = "".join(f"missing-package-{i}==1.0\n" for i in range(3))
    deps = Dependencies(tmp_path / "deps", extra_args=offline(index), max_output=200)
    with pytest.raises(DeployError) as caught:
        await deps.ensure("shop", _requirements(tmp_path / "app", many))
    assert len(caught.value.details) < 300
    assert caught.value.details.rstrip().endswith("missing-package-0==1.0")


async def test_a_version_from_an_older_server_reuses_its_shared_install(tmp_path: Path, index: Path) -> None:
    requirements = _requirements(tmp_path / "app", "tinylib==1.0\n")
    deps = Dependencies(tmp_path / "deps", extra_args=["--no-index"])  # nothing to install from
    key = requirements_key("tinylib==1.0\n")
    legacy = deps.legacy_directory(key)
    (legacy / "site-packages" / "tinylib").mkdir(parents=True)
    (legacy / LOG_FILE).write_text("Successfully installed tinylib-1.0\n", encoding="utf-8")
    found = await deps.ensure("shop", requirements, reuse_legacy=True)
    assert found.cached
    assert found.path == legacy / "site-packages"
    # A new deploy installs for the app itself (and here fails: the server offers no index).
    with pytest.raises(DeployError, match="pip could not install"):
        await deps.ensure("shop", requirements)


@pytest.mark.parametrize("text", [None, "missing", "# only a comment\n\n   \n"])
async def test_no_requirements_means_nothing_to_put_on_the_path(tmp_path: Path, text: str | None) -> None:
    deps = Dependencies(tmp_path / "deps")
    if text is None:
        result = await deps.ensure("shop", None)
    elif text == "missing":
        result = await deps.ensure("shop", tmp_path / "requirements.txt")
    else:
        (tmp_path / "requirements.txt").write_text(text, encoding="utf-8")
        result = await deps.ensure("shop", tmp_path / "requirements.txt")
    assert result.path is None
    assert result.key is None
    assert not (tmp_path / "deps").exists()


def test_the_key_ignores_comments_spacing_and_line_endings_but_not_pins() -> None:
    plain = "orjson==3.10.0\nhttpx>=0.27\n"
    assert normalise_requirements("  orjson==3.10.0  # fast json\r\n\r\n# tools\nhttpx\\\n>=0.27\n") == plain
    assert requirements_key(plain) == requirements_key("orjson==3.10.0\n\n\nhttpx>=0.27")
    assert requirements_key(plain) != requirements_key("orjson==3.10.1\nhttpx>=0.27\n")


def test_a_bad_app_name_never_becomes_a_path(tmp_path: Path) -> None:
    deps = Dependencies(tmp_path / "deps")
    for name in ("../blog", "", ".", "a/b"):
        with pytest.raises(ValueError, match="invalid app name"):
            deps.directory(name, "k")


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
