"""The `triggerfish` command. Each verb group lives in its own module and is added here."""

from __future__ import annotations

import click

from triggerfish import __version__
from triggerfish.cli.check import check
from triggerfish.cli.dev import dev
from triggerfish.cli.events import events


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="triggerfish")
def cli() -> None:
    """Triggerfish: run Python functions when something happens."""


cli.add_command(events)
cli.add_command(check)
cli.add_command(dev)


def main() -> None:
    cli()
