"""Which app a directory or file holds, and the name it goes by, found without importing it.

`triggerfish deploy`, `dev` and `check` agree on this: the app is `app.py` in
the directory, or the file `app = "..."` names in its triggerfish.toml. Its
name, first found wins: `--app` (deploy), `name = "..."` in triggerfish.toml,
the name given to `App("...")` in the app file (read from the source, never
imported), the directory's name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from triggerfish.cli.client import input_error

DEFAULT_APP_FILE = "app.py"
#: Where `triggerfish dev` keeps an app's data unless told --data-dir: a directory per app under it.
DEV_DATA_ROOT = Path(".triggerfish")


@dataclass(frozen=True)
class Project:
    """What is deployed: the directory, the app file in it, and the name on the server (and why)."""

    directory: Path
    app_file: Path
    name: str
    name_from: str
    #: What the platform loads: the app file, with `:attr` when triggerfish.toml's `app =` names one.
    target: str


def find_project(app_dir: Path, app_name: str | None, stage: str | None) -> Project:
    """The app to deploy from APP_DIR and the name it goes by (see the module docstring); CliError exit 2."""
    from triggerfish.config import load_config
    from triggerfish.errors import DeclarationError
    from triggerfish.model import check_app_name

    directory = app_dir.resolve()
    if not directory.is_dir():
        raise input_error(f"{app_dir} is not a directory: give the directory that holds the app")
    try:
        config = load_config(directory)
    except DeclarationError as exc:
        raise input_error(str(exc)) from None
    if stage is not None and stage not in config.stages:
        where = config.path or directory / "triggerfish.toml"
        known = ", ".join(sorted(config.stages)) or "none are defined"
        raise input_error(f"{where}: unknown stage {stage!r} (stages: {known}); add [stages.{stage}]")
    app_file = _app_file(directory, config.app, config.path)
    candidates = [
        ("--app", app_name),
        (f"name in {config.path}", config.name),
        (f'App("...") in {app_file.relative_to(directory)}', _declared_name(app_file)),
        ("the directory's name", directory.name),
    ]
    name_from, name = next((where, value) for where, value in candidates if value)
    try:
        check_app_name(name)
    except ValueError as exc:
        hint = "" if name_from == "--app" else ', so give one with --app, or with name = "..." in triggerfish.toml'
        raise input_error(f"{exc}; it came from {name_from}{hint}") from None
    return Project(directory, app_file, name, name_from, str(app_file) + _attribute(config.app))


def _app_file(directory: Path, target: str | None, config_file: Path | None) -> Path:
    """The file the server will import: what `app = ...` names, else APP_DIR/app.py."""
    if target is None:
        path = directory / DEFAULT_APP_FILE
        if not path.is_file():
            raise input_error(
                f"no app in {directory}: there is no {DEFAULT_APP_FILE}; add one, or name the app's file with"
                ' app = "FILE.py:app" in triggerfish.toml'
            )
        return path
    location, colon, attr = target.rpartition(":")
    location = location if colon and attr.isidentifier() else target
    if location.endswith(".py"):
        options = [directory / location]
    else:  # a module: pkg.module
        module = directory.joinpath(*location.split("."))
        options = [module.with_suffix(".py"), module / "__init__.py"]
    for path in options:
        if path.is_file():
            if not path.resolve().is_relative_to(directory):
                raise input_error(f"{config_file}: app = {target!r} is outside {directory}, so it would not be sent")
            return path
    raise input_error(
        f"{config_file}: app = {target!r} names {options[0].relative_to(directory)}, which is not in {directory}"
    )


def _declared_name(app_file: Path) -> str | None:
    """The name in the app file's one `App("name")` (or `triggerfish.App(...)`), read from the source; None when
    it is not a plain string, there are several, or the file does not parse (the server will say why)."""
    try:
        tree = ast.parse(app_file.read_bytes(), filename=str(app_file))
    except (OSError, SyntaxError, ValueError):
        return None
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = node.func
        if not (
            (isinstance(called, ast.Name) and called.id == "App")
            or (isinstance(called, ast.Attribute) and called.attr == "App")
        ):
            continue
        given = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
        if isinstance(given, ast.Constant) and isinstance(given.value, str):
            names.add(given.value)
    return names.pop() if len(names) == 1 else None


@dataclass(frozen=True)
class LocalApp:
    """What `triggerfish dev` or `check` runs: the target to load, and the name its data is kept under."""

    target: str
    name: str

    @property
    def data_dir(self) -> Path:
        """Its own directory under .triggerfish/, so two apps run from one directory never see each other's data."""
        return DEV_DATA_ROOT / self.name


def local_app(target: str, stage: str | None = None) -> LocalApp:
    """The app `target` names: a directory (its app.py or triggerfish.toml's `app =`), a .py file or a module.

    Raises CliError (exit 2) for a directory without an app or a bad triggerfish.toml.
    """
    if Path(target).is_dir():
        project = find_project(Path(target), None, stage)
        return LocalApp(project.target, project.name)
    from triggerfish.config import load_config
    from triggerfish.errors import DeclarationError

    location = _location(target)
    if location.endswith(".py") or "/" in location:
        app_file = Path(location)
        directory = app_file.resolve().parent
        try:
            configured = load_config(directory).name
        except DeclarationError as exc:
            raise input_error(str(exc)) from None
        declared = _declared_name(app_file) if app_file.is_file() else None
        candidates = [configured, declared, directory.name]
    else:  # a module on sys.path: pkg.module
        candidates = [location.rpartition(".")[2]]
    return LocalApp(target, _usable_name(next(name for name in candidates if name)))


def _location(target: str) -> str:
    """`target` without its `:attr` (a Windows drive's colon is not one)."""
    location, colon, attr = target.rpartition(":")
    return location if colon and attr and all(part.isidentifier() for part in attr.split(".")) else target


def _attribute(target: str | None) -> str:
    """The `:attr` part of triggerfish.toml's `app =`, or "" when it names none."""
    if target is None:
        return ""
    location = _location(target)
    return target[len(location) :]


def _usable_name(name: str) -> str:
    """A directory name for the app's data: its name, with what an app name may not hold replaced by `-`."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", name).strip("-_") or "app"
    return cleaned[:64]
