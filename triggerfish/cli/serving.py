"""What `triggerfish dev` and `triggerfish serve` share: binding the address, and serving until a signal.

Both own SIGINT and SIGTERM themselves (the server is built with
`handle_signals=False`): after the server stops accepting, the platform must
still drain what is in flight, which uvicorn's own handling would cut short.
"""

from __future__ import annotations

import asyncio
import errno
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from triggerfish.gateway import GatewayServer

F = TypeVar("F", bound=Callable[..., Any])
#: ConnectionLimits' defaults, repeated so that `triggerfish --help` does not import the server (a test pins them).
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE = 5.0


def connection_options(*, defaults: bool) -> Callable[[F], F]:
    """The options `dev` and `serve` share: connection limits, and the Host and Origin headers accepted.

    With `defaults` False (serve, whose config file may set them) the options default to None.
    """

    def default(value: Any) -> Any:
        return value if defaults else None

    def shown(value: Any) -> str:
        return "" if defaults else f" (default {value})"

    def decorate(command: F) -> F:
        options = [
            click.option(
                "--max-connections",
                type=click.IntRange(1, 1_000_000),
                default=default(DEFAULT_MAX_CONNECTIONS),
                show_default=defaults,
                help="Connections open at once; over it, the longest-idle one is closed, or 503 when all are busy"
                + shown(DEFAULT_MAX_CONNECTIONS)
                + ".",
            ),
            click.option(
                "--header-timeout",
                type=click.FloatRange(0.1, 3600),
                default=default(DEFAULT_HEADER_TIMEOUT),
                show_default=defaults,
                help="Seconds for a request's head to arrive in full (408 after)" + shown(DEFAULT_HEADER_TIMEOUT) + ".",
            ),
            click.option(
                "--keep-alive-timeout",
                type=click.FloatRange(0.1, 3600),
                default=default(DEFAULT_KEEP_ALIVE),
                show_default=defaults,
                help="Seconds an idle kept-alive connection stays open" + shown(DEFAULT_KEEP_ALIVE) + ".",
            ),
            click.option(
                "--allowed-host",
                "allowed_hosts",
                multiple=True,
                metavar="NAME",
                help="A Host name the platform endpoints answer to (repeatable; *.example.com, or * for any).",
            ),
            click.option(
                "--allowed-origin",
                "allowed_origins",
                multiple=True,
                metavar="ORIGIN",
                help="A web origin (scheme://host:port) whose pages may call the platform endpoints (repeatable).",
            ),
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (installed on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def bind(server: GatewayServer, host: str, port: int) -> bool:
    """Start `server`; False, with the reason on stderr, when the address cannot be used."""
    try:
        await server.start()
    except OSError as exc:
        reason = "is in use; pick another with --port" if exc.errno == errno.EADDRINUSE else f"cannot be used: {exc}"
        click.echo(f"error: {host}:{port} {reason}", err=True)
        return False
    return True


async def serve_until_stopped(server: GatewayServer, stop: asyncio.Event, drain: Callable[[], Awaitable[None]]) -> None:
    """Serve until `stop` is set (or the server ends), then stop accepting and `drain` what is in flight."""
    try:
        stopped = asyncio.ensure_future(stop.wait())
        serving = asyncio.ensure_future(server.wait())
        await asyncio.wait({stopped, serving}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        serving.cancel()
    finally:
        click.echo("stopping: letting work in flight finish ...")
        await server.stop()
        await drain()
        click.echo("stopped")
