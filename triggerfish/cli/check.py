"""`triggerfish check APP`: load an app as the platform would, and list its functions and triggers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from triggerfish.errors import AppLoadError, DeclarationError


@click.command()
@click.argument("target", metavar="APP")
@click.option("--stage", default=None, help="Apply this stage of triggerfish.toml.")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="FUNCTION.SETTING=VALUE",
    help="Override a setting, as the command line of `dev` and `serve` will (repeatable; FUNCTION may be *).",
)
def check(target: str, stage: str | None, settings: tuple[str, ...]) -> None:
    """Import APP (a directory, path/to/app.py[:attr] or package.module[:attr]) and print its functions.

    A directory holds its app in app.py, or in the file triggerfish.toml's `app =` names.

    Exits 0 when the app loads, 2 when it does not, with the reason (and the
    traceback of an import error) on stderr.
    """
    from triggerfish.cli.project import local_app
    from triggerfish.config import load_config, parse_override, resolve_functions
    from triggerfish.loader import describe_functions, load_app

    target = local_app(target, stage).target
    try:
        overrides: dict[str, dict[str, Any]] = {}
        for text in settings:
            function, setting, value = parse_override(text)
            overrides.setdefault(function, {})[setting] = value
        app = load_app(target)
        app_dir = Path(target.split(":", 1)[0]).parent if target.endswith(".py") or ".py:" in target else Path()
        specs = resolve_functions(app, load_config(app_dir), stage=stage, overrides=overrides)
    except AppLoadError as exc:
        if exc.details:
            click.echo(exc.details.rstrip(), err=True)
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except DeclarationError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"app {app.name!r}: {len(specs)} function{'s' if len(specs) != 1 else ''}")
    click.echo(describe_functions(specs))
