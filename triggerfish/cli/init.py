"""`triggerfish init [DIR]`: a new project that runs, passes its own test and deploys as it is.

    triggerfish init notes --template http

The templates are files in triggerfish/templates/: `_common/` holds what
every project gets, `<template>/` what one template adds or replaces. A
file there is named for its path in the project plus `.tmpl`, so that this
repository's ruff, mypy and pytest leave the templates' Python alone (their
own test runs each template's project instead, tests/cli/test_init.py), and
dotfiles lose their dot, so that git and the wheel builder do not take
`.gitignore` for this repository's own. `{{ name }}` in a file becomes the
app's name. init never overwrites a file unless told to with --force: a
directory that already has one of the template's files is refused, naming them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import click

from triggerfish.cli.client import input_error

#: The templates and what each makes, as `--help` shows them.
TEMPLATES = {
    "http": "a JSON API with two routes",
    "events": "a function on an event pattern that publishes another event",
    "queue": "an HTTP route that queues work, and a batch consumer with partial failures",
    "shop": "an order flow: HTTP, events, retries, a dead-letter queue and an email queue",
}
DEFAULT_TEMPLATE = "http"
PLACEHOLDER = "{{ name }}"
_COMMON = "_common"
_SUFFIX = ".tmpl"
_DOTFILES = frozenset({"gitignore", "triggerfishignore"})
#: What the files every template makes are for, in the order init lists them.
ABOUT_FILES = {
    "app.py": "the app",
    "test_app.py": "its tests, for pytest",
    "triggerfish.toml": "its name and settings",
    "requirements.txt": "the packages it needs on a server",
    "README.md": "how to run, test and deploy it",
    ".triggerfishignore": "what a deploy leaves out",
    ".gitignore": "what git leaves out",
    "ruff.toml": "its lint settings, if you use ruff",
}


@dataclass(frozen=True)
class Project:
    """What init made: where, from which template, the app's name and the files written (relative paths)."""

    directory: Path
    template: str
    name: str
    files: tuple[str, ...]


def render(template: str, name: str) -> dict[str, str]:
    """The files of a new project: each path in the project mapped to its text."""
    if template not in TEMPLATES:
        raise input_error(f"unknown template {template!r}; the templates are {', '.join(TEMPLATES)}")
    root = resources.files("triggerfish").joinpath("templates")
    files: dict[str, str] = {}
    for folder in (_COMMON, template):
        for path, source in _walk(root.joinpath(folder), ""):
            files[path] = source.read_text(encoding="utf-8").replace(PLACEHOLDER, name)
    listed = [path for path in ABOUT_FILES if path in files] + sorted(set(files) - set(ABOUT_FILES))
    return {path: files[path] for path in listed}


def create_project(
    directory: Path, *, template: str = DEFAULT_TEMPLATE, name: str | None = None, force: bool = False
) -> Project:
    """Write a new project into `directory` (created if missing) and return what was written.

    `name` defaults to the directory's name. Raises CliError (exit code 2) for an
    invalid name, or when a file of the template is already there (unless
    `force`), naming the files.
    """
    from triggerfish.model import check_app_name

    if directory.exists() and not directory.is_dir():
        raise input_error(f"{directory} is a file; give a directory for the new project")
    try:
        name = check_app_name(directory.resolve().name if name is None else name)
    except ValueError as exc:
        if name is not None:
            raise input_error(f"--name: {exc}") from None
        raise input_error(f"{exc} (the name of {directory.resolve()}); give the app one with --name NAME") from None
    files = render(template, name)
    existing = [path for path in files if (directory / path).exists() or (directory / path).is_symlink()]
    blocked = [path for path in existing if (directory / path).is_dir()]
    if blocked:
        raise input_error(f"{_where(directory)} has directories where the project's files go: {', '.join(blocked)}")
    if existing and not force:
        raise input_error(
            f"{_where(directory)} already has {', '.join(existing)}, which init would overwrite; "
            "choose a new or empty directory, or pass --force to overwrite them"
        )
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return Project(directory, template, name, tuple(files))


def _walk(folder: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for entry in folder.iterdir():
        if entry.is_dir():
            if entry.name != "__pycache__":
                found.extend(_walk(entry, f"{prefix}{entry.name}/"))
        elif entry.name.endswith(_SUFFIX):
            stem = entry.name.removesuffix(_SUFFIX)
            found.append((prefix + ("." + stem if stem in _DOTFILES else stem), entry))
    return found


def _where(directory: Path) -> str:
    return "the current directory" if directory.resolve() == Path.cwd().resolve() else str(directory)


@click.command(epilog="\b\nTemplates:\n" + "\n".join(f"  {name:<8}{about}" for name, about in TEMPLATES.items()))
@click.argument("directory", default=".", type=click.Path(path_type=Path))
@click.option(
    "--template",
    "-t",
    type=click.Choice(list(TEMPLATES)),
    default=DEFAULT_TEMPLATE,
    show_default=True,
    help="What the app does (the templates are listed below).",
)
@click.option("--name", default=None, help="The app's name (default: the directory's name).")
@click.option("--force", is_flag=True, help="Overwrite the files of the template that are already there.")
def init(directory: Path, template: str, name: str | None, force: bool) -> None:
    """Create a project in DIRECTORY (default: here) that runs, tests and deploys as it is.

    It has the app (app.py), its test (test_app.py), its settings
    (triggerfish.toml), requirements.txt, .triggerfishignore and a README
    saying how to run it. Existing files are never overwritten without
    --force. Exits 0 when the project is written, 2 when it is not (the
    reason on stderr).
    """
    project = create_project(directory, template=template, name=name, force=force)
    click.echo(f"Created the {template} app {project.name!r} in {_where(directory)}:")
    width = max(len(path) for path in project.files)
    for path in project.files:
        click.echo(f"  {path:<{width}}  {ABOUT_FILES.get(path, '')}".rstrip())
    click.echo("\nNext:")
    steps = []
    if _where(directory) != "the current directory":
        steps.append((f"cd {shlex.quote(str(directory))}", ""))
    steps += [
        ("triggerfish dev app.py", "run it on http://127.0.0.1:8080, reloading as you save"),
        ("pytest", "run its tests (pip install pytest)"),
        ("triggerfish deploy", "deploy it to a server that runs `triggerfish serve`"),
    ]
    width = max(len(command) for command, _ in steps)
    for command, why in steps:
        click.echo(f"  {command:<{width}}  {why}".rstrip())
