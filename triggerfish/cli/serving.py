"""What `triggerfish dev` and `triggerfish serve` share: binding the address, and serving until a signal.

Both own SIGINT and SIGTERM themselves (the server is built with
`handle_signals=False`): after the server stops accepting, the platform must
still drain what is in flight, which uvicorn's own handling would cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click

from triggerfish import cores
from triggerfish.server import heap

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
            click.option(
                "--trusted-proxy",
                "trusted_proxies",
                multiple=True,
                metavar="ADDRESS",
                help="A reverse proxy (address or network) whose X-Forwarded-For/-Proto/-Port are believed"
                " (repeatable; default: none, not even loopback).",
            ),
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


T = TypeVar("T")

#: Seconds a thread waiting for the GIL waits before it asks the holder to drop it (Python's default: 0.005).
#: The platform's event loop shares the interpreter with the store's writer and reader threads: every
#: socket write releases the GIL to them, and getting it back took up to 5 ms. At 1,000 events/s this
#: alone took publish-to-handler p99 from 326 ms to 89 ms (docs/benchmarks.md).
SWITCH_INTERVAL = 0.0005
#: Which event loop a platform process runs: "uvloop" (the default where it is installed) or "asyncio".
LOOP_VARIABLE = "TRIGGERFISH_LOOP"


def run_platform(main: Coroutine[Any, Any, T]) -> T:
    """Run the process of `triggerfish dev` or `serve`: uvloop where installed, a short GIL switch interval, the
    process's threads on one core (`triggerfish.cores`; `TRIGGERFISH_PLATFORM_CPU=off` leaves them anywhere).

    `TRIGGERFISH_LOOP=asyncio` keeps asyncio's own loop. A value of either variable it does not know is a
    ClickException naming it.
    """
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        cores.pin_platform()
        factory = loop_factory()
    except ValueError as exc:
        main.close()
        raise click.ClickException(str(exc)) from None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_with_workers_placed(main))


async def _with_workers_placed(main: Coroutine[Any, Any, T]) -> T:
    """`main`, with the platform's workers kept off its core while it is busy (`cores.keep_workers_placed`)."""
    placing = asyncio.create_task(cores.keep_workers_placed(), name="triggerfish-cores")
    try:
        return await main
    finally:
        placing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await placing


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop, unless `TRIGGERFISH_LOOP` says "asyncio" or uvloop is not installed (None: asyncio's)."""
    wanted = os.environ.get(LOOP_VARIABLE, "uvloop")
    if wanted not in ("uvloop", "asyncio"):
        raise ValueError(f"{LOOP_VARIABLE}={wanted!r}: use uvloop or asyncio")
    if wanted == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


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
    heap.settle()  # started: what startup built stays out of the full passes; young passes come less often
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
