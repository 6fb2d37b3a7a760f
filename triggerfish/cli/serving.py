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

import click

from triggerfish.gateway import GatewayServer


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
