"""`triggerfish deploy`: finds the app and its name without importing it, packs, uploads only what the
server lacks, deploys, and reports phases and changed functions; a failed deploy shows its phase and pip's
output or the traceback; bad input, an unreachable server and a refused key exit 2, 3 and 4."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.deploy.deploy_server import DEPLOYER_KEY, VIEWER_KEY, DeployServer, served
from triggerfish.cli.main import cli
from triggerfish.cli.project import find_project

APP = """
import triggerfish

app = triggerfish.App("shop")


@app.function()
def quote(event, context):
    return {"total": 10}
"""
_VARIABLES = ("TRIGGERFISH_SERVER", "TRIGGERFISH_KEY", "TRIGGERFISH_APP", "TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR")
#: Colours, and the cursor moves of the spinner shown while the server works.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the developer's login nor the shell's TRIGGERFISH_* variables reach the CLI under test."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRIGGERFISH_CONFIG", str(tmp_path / "config" / "config.toml"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DeployServer]:
    with served(tmp_path / "server-bundles") as running:
        yield running


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def project(root: Path, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "app.py").write_text(APP, encoding="utf-8")
    (root / "requirements.txt").write_text("tinylib==1.0\n", encoding="utf-8")
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def deploy(directory: Path, server: DeployServer, *args: str, env: dict[str, str] | None = None) -> Result:
    return run("deploy", str(directory), "--server", server.url, "--key", DEPLOYER_KEY, *args, env=env)


def test_a_first_deploy_uploads_the_bundle_and_reports_phases_and_functions(
    tmp_path: Path, server: DeployServer
) -> None:
    directory = project(tmp_path / "shop", {".git/HEAD": "ref\n", "lib/prices.py": "RATE = 2\n"})
    done = deploy(directory, server)
    assert done.exit_code == 0, done.stderr
    assert [(c.method, c.path) for c in server.calls] == [
        ("HEAD", f"/-/api/v1/apps/shop/bundles/{_sha(server)}"),
        ("PUT", f"/-/api/v1/apps/shop/bundles/{_sha(server)}"),
        ("POST", "/-/api/v1/apps/shop/deploys"),
    ]
    assert {c.key for c in server.calls} == {DEPLOYER_KEY}
    assert json.loads(server.calls[2].body) == {"bundle": _sha(server), "stage": None}
    # The server got the app's files, and not what is never shipped.
    assert server.files(_sha(server)) == ["app.py", "lib/prices.py", "requirements.txt"]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("pack: 3 files, ")
    assert lines[0].endswith(f"({_sha(server)[:12]})")
    assert lines[1].startswith("upload: ")
    assert lines[1].endswith(" sent")
    assert lines[2:] == [
        "install: 1.25 s: Successfully installed tinylib-1.0",
        "import: 0.25 s",
        "switch: 0.01 s",
        "deployed shop version 1: live now",
        "  added: quote, refund",
    ]


def test_the_same_files_again_are_not_uploaded_again(tmp_path: Path, server: DeployServer) -> None:
    directory = project(tmp_path / "shop")
    assert deploy(directory, server).exit_code == 0
    server.calls.clear()
    again = deploy(directory, server)
    assert again.exit_code == 0, again.stderr
    assert [c.method for c in server.calls] == ["HEAD", "POST"]
    assert "upload: skipped: the server has this bundle already" in again.stdout
    assert "install: 1.25 s (cached)" in again.stdout
    assert "deployed shop version 2: live now" in again.stdout
    assert "  changed: quote" in again.stdout
    assert "  unchanged: refund" in again.stdout


def test_json_prints_the_answer_with_the_bundle(tmp_path: Path, server: DeployServer) -> None:
    directory = project(tmp_path / "shop", {"triggerfish.toml": "[stages.prod.functions.quote]\ntimeout = 5\n"})
    done = deploy(directory, server, "--json", "--stage", "prod")
    assert done.exit_code == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["app"] == "shop"
    assert document["version"] == 1
    assert document["bundle"] == {
        "sha256": _sha(server),
        "size": len(server.calls[1].body),
        "files": 3,
        "uploaded": True,
    }
    assert [p["name"] for p in document["phases"]] == ["install", "import", "switch"]
    assert json.loads(server.calls[-1].body) == {"bundle": _sha(server), "stage": "prod"}


def test_on_a_terminal_the_phases_are_coloured(tmp_path: Path, server: DeployServer) -> None:
    done = deploy(project(tmp_path / "shop"), server, env={"TTY_COMPATIBLE": "1"})
    assert done.exit_code == 0, done.stderr
    assert "\x1b[" in done.stdout
    plain = _ESCAPES.sub("", done.stdout)
    for phase in ("pack", "upload", "install", "import", "switch"):
        assert re.search(rf"^\s*{phase} ", plain, re.MULTILINE), plain
    assert "deployed shop version 1: live now" in plain


@pytest.mark.parametrize(
    ("phase", "details"),
    [
        ("install", "ERROR: No matching distribution found for no-such-lib==9.9"),
        (
            "import",
            'Traceback (most recent call last):\n  File "app.py", line 2\nModuleNotFoundError: No module named x',
        ),
    ],
)
def test_a_failed_deploy_shows_its_phase_and_details_and_exits_1(
    tmp_path: Path, server: DeployServer, phase: str, details: str
) -> None:
    server.failure = {"code": "DeployFailed", "message": f"the {phase} failed", "phase": phase, "details": details}
    done = deploy(project(tmp_path / "shop"), server)
    assert done.exit_code == 1
    assert f"the deploy of shop failed at {phase}: the {phase} failed" in done.stderr
    assert details in done.stderr
    assert "nothing changed" in done.stderr
    as_json = deploy(project(tmp_path / "again"), server, "--app", "shop", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) == {"app": "shop", "error": server.failure}


def test_the_name_comes_from_the_flag_the_config_the_source_or_the_directory(tmp_path: Path) -> None:
    plain = project(tmp_path / "shop-dir")
    assert (find_project(plain, None, None).name, find_project(plain, None, None).name_from) == (
        "shop",
        'App("...") in app.py',
    )
    assert find_project(plain, "orders", None).name == "orders"
    named = project(tmp_path / "named", {"triggerfish.toml": 'name = "storefront"\n'})
    assert find_project(named, None, None).name == "storefront"
    dynamic = tmp_path / "dynamic"
    dynamic.mkdir()
    (dynamic / "app.py").write_text("import os, triggerfish\napp = triggerfish.App(os.environ['N'])\n", "utf-8")
    assert find_project(dynamic, None, None).name == "dynamic"
    # The app file named in triggerfish.toml is the one read, and it need not be called app.py.
    nested = tmp_path / "nested"
    (nested / "src").mkdir(parents=True)
    (nested / "src" / "main.py").write_text("from triggerfish import App\napp = App(name='blog')\n", "utf-8")
    (nested / "triggerfish.toml").write_text('app = "src/main.py:app"\n', "utf-8")
    found = find_project(nested, None, None)
    assert (found.name, found.app_file) == ("blog", nested / "src" / "main.py")


def test_the_name_goes_into_the_urls(tmp_path: Path, server: DeployServer) -> None:
    done = deploy(project(tmp_path / "shop"), server, "--app", "orders")
    assert done.exit_code == 0, done.stderr
    assert {c.path.split("/")[5] for c in server.calls} == {"orders"}


@pytest.mark.parametrize(
    ("files", "args", "expected"),
    [
        ({"app.py": None}, (), "no app in .*: there is no app.py"),
        ({"triggerfish.toml": 'app = "src/missing.py:app"\n'}, (), r"app = 'src/missing.py:app' names src/missing.py"),
        ({"triggerfish.toml": "nmae = 'x'\n"}, (), r"unknown key 'nmae' \(did you mean 'name'\?\)"),
        ({}, ("--stage", "prod"), r"unknown stage 'prod' \(stages: none are defined\)"),
        ({}, ("--app", "my shop"), r"invalid app name 'my shop'"),
        (
            {"requirements.txt": "orjson\n-r ../../admin.key\n"},
            (),
            r"requirements.txt: 1 line refused.*\n  line 2: '-r ../../admin.key' uses -r",
        ),
        ({"data.bin": "x" * 30}, (), None),  # fits: the limits are the server's defaults
    ],
    ids=["no-app", "missing-target", "bad-config", "unknown-stage", "bad-name", "bad-requirements", "ok"],
)
def test_bad_local_input_exits_2_before_anything_is_sent(
    tmp_path: Path, server: DeployServer, files: dict[str, str | None], args: tuple[str, ...], expected: str | None
) -> None:
    directory = project(tmp_path / "shop")
    for name, text in files.items():
        if text is None:
            (directory / name).unlink()
        else:
            (directory / name).write_text(text, encoding="utf-8")
    done = deploy(directory, server, *args)
    if expected is None:
        assert done.exit_code == 0, done.stderr
        return
    assert done.exit_code == 2, done.stdout
    assert re.search(expected, done.stderr), done.stderr
    assert server.calls == []


def test_a_link_out_of_the_app_exits_2_naming_it(tmp_path: Path, server: DeployServer) -> None:
    directory = project(tmp_path / "shop")
    (tmp_path / "secrets").mkdir()
    (directory / "keys").symlink_to(tmp_path / "secrets")
    done = deploy(directory, server)
    assert done.exit_code == 2
    assert "keys: symbolic link to" in done.stderr
    assert "outside the app directory" in done.stderr
    assert server.calls == []


def test_a_directory_name_that_is_no_app_name_asks_for_one(tmp_path: Path, server: DeployServer) -> None:
    directory = tmp_path / "my.project"
    directory.mkdir()
    (directory / "app.py").write_text("import triggerfish\napp = triggerfish.App(NAME)\n", encoding="utf-8")
    done = deploy(directory, server)
    assert done.exit_code == 2
    assert "invalid app name 'my.project'" in done.stderr
    assert "it came from the directory's name, so give one with --app" in done.stderr


def test_an_unreachable_server_exits_3(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run("deploy", str(project(tmp_path / "shop")), "--server", f"http://127.0.0.1:{port}")
    assert done.exit_code == 3
    assert (
        f"server unreachable at http://127.0.0.1:{port} (from --server): is `triggerfish dev` or"
        " `triggerfish serve` running there? Give another with --server URL (or $TRIGGERFISH_SERVER)" in done.stderr
    )


@pytest.mark.parametrize(("key", "status"), [(None, "401"), ("tfk_unknown0_" + "X" * 32, "401"), (VIEWER_KEY, "403")])
def test_a_missing_unknown_or_weak_key_exits_4(
    tmp_path: Path, server: DeployServer, key: str | None, status: str
) -> None:
    args = ["deploy", str(project(tmp_path / "shop")), "--server", server.url]
    done = run(*args, *(["--key", key] if key else []))
    assert done.exit_code == 4
    assert f"not authorised ({status}" in done.stderr


def test_the_server_and_key_come_from_the_environment_too(tmp_path: Path, server: DeployServer) -> None:
    env = {"TRIGGERFISH_SERVER": server.url, "TRIGGERFISH_KEY": DEPLOYER_KEY, "TRIGGERFISH_APP": "blog"}
    done = run("deploy", str(project(tmp_path / "shop")), env=env)
    assert done.exit_code == 0, done.stderr
    # TRIGGERFISH_APP does not rename a deploy: it would replace another app.
    assert "deployed shop version 1" in done.stdout


def _sha(server: DeployServer) -> str:
    return server.calls[0].path.rsplit("/", 1)[1]
