"""The `triggerfish` command. Each verb group lives in its own module and is added here."""

from __future__ import annotations

import signal
from types import FrameType

import click

from triggerfish import __version__
from triggerfish.cli.apps import describe, list_command, remove, rollback, status
from triggerfish.cli.audit import audit
from triggerfish.cli.check import check
from triggerfish.cli.deploy import deploy
from triggerfish.cli.dev import dev
from triggerfish.cli.events import events
from triggerfish.cli.eventstore import eventstore
from triggerfish.cli.init import init
from triggerfish.cli.invocations import invocations
from triggerfish.cli.invoke import invoke
from triggerfish.cli.keys import keys
from triggerfish.cli.login import login
from triggerfish.cli.logs import logs
from triggerfish.cli.queues import queues
from triggerfish.cli.secrets import secrets
from triggerfish.cli.serve import serve
from triggerfish.cli.store import store
from triggerfish.cli.stream import stream
from triggerfish.cli.traces import traces
from triggerfish.cli.usage import usage
from triggerfish.cli.versions import alias, promote, versions
from triggerfish.cli.workflows import workflows


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="triggerfish")
def cli() -> None:
    """Triggerfish: run Python functions when something happens."""


cli.add_command(init)
cli.add_command(events)
cli.add_command(check)
cli.add_command(dev)
cli.add_command(serve)
cli.add_command(store)
for command in (
    deploy,
    invoke,
    invocations,
    list_command,
    describe,
    remove,
    rollback,
    status,
    queues,
    stream,
    keys,
    login,
    logs,
    secrets,
    audit,
    workflows,
    eventstore,
    usage,
    traces,
    versions,
    alias,
    promote,
):
    cli.add_command(command)
# The event store's verbs also answer to `streams` (issue 12 names them so); `stream` (singular) is the
# built-in partitioned stream of issue 15, a different thing.
cli.add_command(eventstore, name="streams")


def main() -> None:
    stop_on_signals()
    cli()


def stop_on_signals() -> None:
    """SIGINT and SIGTERM both stop a verb as Ctrl-C does (KeyboardInterrupt), even when started in the background.

    A shell starts a background command with SIGINT ignored, and Python keeps an ignored signal ignored:
    `kill -INT` would do nothing, and SIGTERM would end the process mid-write, with no goodbye. Here both
    reach the verb, which stops cleanly (`logs -f` exits 0, `dev` and `serve` drain first: their event
    loop takes the signals over while it runs).
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
