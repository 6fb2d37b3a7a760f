"""`triggerfish init`: every template makes a project that loads, passes its own tests and serves, as it is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.server.devserver import DevServer, poll
from triggerfish.cli.init import TEMPLATES, render
from triggerfish.cli.main import cli
from triggerfish.cli.project import find_project
from triggerfish.config import load_config
from triggerfish.deploy.bundle import pack
from triggerfish.loader import load_app

REPO = Path(__file__).resolve().parents[2]
FILES = {
    "app.py",
    "test_app.py",
    "triggerfish.toml",
    "requirements.txt",
    "README.md",
    ".triggerfishignore",
    "ruff.toml",
}


def init(*args: str) -> Result:
    return CliRunner().invoke(cli, ["init", *args], catch_exceptions=False)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command in the project's directory, as a user runs it there, with this repository importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One project per template, made once by `triggerfish init` (the slow checks share them)."""
    root = tmp_path_factory.mktemp("projects")
    made = {}
    for template in TEMPLATES:
        result = init(str(root / f"my-{template}"), "--template", template)
        assert result.exit_code == 0, result.output
        made[template] = root / f"my-{template}"
    return made


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_a_new_project_loads_and_passes_its_own_tests(projects: dict[str, Path], template: str) -> None:
    project = projects[template]
    assert {path.name for path in project.iterdir()} >= FILES

    checked = run(sys.executable, "-m", "triggerfish", "check", "app.py", cwd=project)
    assert checked.returncode == 0, checked.stderr
    assert f"app 'my-{template}'" in checked.stdout

    # This repository's pytest settings (warnings are errors, strict markers and config), but nothing else of
    # it: the rootdir is the project, so no conftest of the repository is loaded.
    tested = run(
        sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir", ".",
        "-p", "no:cacheprovider", "test_app.py", cwd=project,
    )  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert " passed" in tested.stdout
    assert "failed" not in tested.stdout
    assert "warning" not in tested.stdout.lower()


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_a_project_made_inside_this_repository_passes_its_ruff_and_alone_too(tmp_path: Path, template: str) -> None:
    # Inside a checkout `triggerfish` is the repository's own package; in the user's project it is installed.
    # Made in a copy of the repository's root (its settings, its package directory), and then on its own, the
    # project's files pass `ruff check` and `ruff format --check` run from each root.
    checkout = tmp_path / "checkout"
    (checkout / "triggerfish").mkdir(parents=True)
    (checkout / "triggerfish" / "__init__.py").write_text("")
    (checkout / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    assert init(str(checkout / "greeter"), "--template", template).exit_code == 0
    assert init(str(tmp_path / "alone" / "greeter"), "--template", template).exit_code == 0
    ruff = Path(sys.executable).with_name("ruff")
    for root in (checkout, tmp_path / "alone" / "greeter"):
        for command in (["check", "."], ["format", "--check", "."]):
            done = run(str(ruff), *command, cwd=root)
            assert done.returncode == 0, f"ruff {' '.join(command)} in {root}:\n{done.stdout}{done.stderr}"


def test_the_project_is_named_in_the_app_and_in_its_settings(tmp_path: Path) -> None:
    result = init(str(tmp_path / "anything"), "--name", "notes", "--template", "shop")
    assert result.exit_code == 0, result.output
    project = tmp_path / "anything"
    assert load_config(project).name == "notes"  # what `triggerfish deploy` calls the app
    assert load_config(project).app == "app.py:app"
    assert load_app(str(project / "app.py")).name == "notes"
    assert "notes" in (project / "README.md").read_text()


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_no_placeholder_is_left_in_any_file(template: str) -> None:
    for path, text in render(template, "notes").items():
        assert not re.search(r"\{\{\s*\w+\s*\}\}", text), path


def test_a_new_project_is_ready_to_deploy_under_its_name(projects: dict[str, Path]) -> None:
    project = find_project(projects["shop"], None, None)
    assert project.name == "my-shop"
    assert "triggerfish.toml" in project.name_from
    bundle = pack(projects["shop"])
    assert {"app.py", "requirements.txt", "triggerfish.toml"} <= set(bundle.files)
    assert "test_app.py" not in bundle.files  # left out by .triggerfishignore


def test_init_prints_what_it_made_and_what_to_run_next(tmp_path: Path) -> None:
    result = init(str(tmp_path / "notes"))
    assert result.exit_code == 0, result.output
    assert f"Created the http app 'notes' in {tmp_path / 'notes'}:" in result.stdout
    for name in FILES:
        assert f"  {name} " in result.stdout
    next_steps = result.stdout.split("Next:")[1]
    assert f"cd {tmp_path / 'notes'}" in next_steps
    for command in ("triggerfish dev app.py", "pytest", "triggerfish deploy"):
        assert command in next_steps


def test_init_in_the_current_directory_needs_no_cd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "here"
    project.mkdir()
    monkeypatch.chdir(project)
    result = init("--template", "events")
    assert result.exit_code == 0, result.output
    assert "Created the events app 'here' in the current directory:" in result.stdout
    assert "cd " not in result.stdout
    assert (project / "app.py").is_file()


def test_existing_files_are_not_overwritten_and_are_named(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("mine = True\n")
    (tmp_path / "README.md").write_text("# mine\n")
    result = init(str(tmp_path))
    assert result.exit_code == 2
    assert "already has app.py, README.md, which init would overwrite" in result.stderr
    assert "--force" in result.stderr
    assert (tmp_path / "app.py").read_text() == "mine = True\n"
    assert not (tmp_path / "test_app.py").exists()  # nothing at all was written


def test_force_overwrites_the_templates_files_and_keeps_the_others(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("mine = True\n")
    (tmp_path / "notes.txt").write_text("keep me\n")
    result = init(str(tmp_path), "--name", "notes", "--force")
    assert result.exit_code == 0, result.output
    assert 'App("notes")' in (tmp_path / "app.py").read_text()
    assert (tmp_path / "notes.txt").read_text() == "keep me\n"


def test_a_directory_with_other_files_is_used(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "LICENSE").write_text("MIT\n")
    result = init(str(tmp_path), "--name", "notes")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "LICENSE").read_text() == "MIT\n"
    assert (tmp_path / "app.py").is_file()


def test_a_directory_where_a_file_goes_is_refused_even_with_force(tmp_path: Path) -> None:
    (tmp_path / "app.py").mkdir()
    result = init(str(tmp_path), "--name", "notes", "--force")
    assert result.exit_code == 2
    assert "has directories where the project's files go: app.py" in result.stderr


def test_an_unknown_template_lists_the_valid_ones(tmp_path: Path) -> None:
    result = init(str(tmp_path / "x"), "--template", "cron")
    assert result.exit_code == 2
    assert "'cron' is not one of 'http', 'events', 'queue', 'shop'" in result.stderr
    assert not (tmp_path / "x").exists()


def test_an_invalid_name_is_refused_with_the_rule(tmp_path: Path) -> None:
    result = init(str(tmp_path / "x"), "--name", "my shop")
    assert result.exit_code == 2
    assert "--name: invalid app name 'my shop': use 1 to 64 letters, digits, _ or -" in result.stderr
    assert not (tmp_path / "x").exists()


def test_a_directory_whose_name_is_no_app_name_asks_for_one(tmp_path: Path) -> None:
    result = init(str(tmp_path / "my shop"))
    assert result.exit_code == 2
    assert "invalid app name 'my shop'" in result.stderr
    assert "--name NAME" in result.stderr
    assert not (tmp_path / "my shop").exists()


def test_a_file_is_not_a_directory_for_a_project(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("")
    result = init(str(tmp_path / "notes"))
    assert result.exit_code == 2
    assert "is a file" in result.stderr


def test_dev_serves_the_http_project_over_real_http(projects: dict[str, Path]) -> None:
    project = projects["http"]
    server = DevServer("app.py", "--port", "0", "--no-reload", cwd=project).start()
    try:
        hello = httpx.get(f"{server.url}/hello/Ada", timeout=10)
        assert hello.status_code == 200
        assert hello.json() == {"message": "Hello, Ada!"}
        items = [{"price": 450, "quantity": 2}, {"price": 1299, "quantity": 1}]
        quote = httpx.post(f"{server.url}/quotes", json={"items": items}, timeout=10)
        assert quote.json() == {"items": 2, "total": 2199}
        refused = httpx.post(f"{server.url}/quotes", content=b"two nets please", timeout=10)
        assert refused.status_code == 400
        assert "items" in refused.json()["message"]
    finally:
        server.stop()


def test_dev_runs_the_queue_project_with_its_settings(projects: dict[str, Path]) -> None:
    project = projects["queue"]
    server = DevServer("app.py", "--port", "0", "--no-reload", cwd=project).start()
    try:
        queued = httpx.post(f"{server.url}/signups", json={"email": "ada@example.com"}, timeout=10)
        assert queued.status_code == 202
        assert queued.json()["queued"]

        def sent() -> bool:
            answer = httpx.get(
                f"{server.url}/-/api/v1/invocations", params={"function": "send_welcome_emails"}, timeout=10
            )
            return any("sent to ada@example.com" in record["output"] for record in answer.json()["invocations"])

        assert poll(sent, timeout=30)
    finally:
        server.stop()
