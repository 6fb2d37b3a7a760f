"""`triggerfish serve`: the long-running server that teams deploy apps to.

Exit codes: 0 after SIGTERM or Ctrl-C once work in flight has drained; 2 when
the configuration is wrong or the address cannot be bound.
"""

from __future__ import annotations

import asyncio
import sys
import tomllib
from pathlib import Path
from typing import Any

import click

EXIT_BAD_SETUP = 2
#: Keys of the --config file, with the types they take; the command-line options override them.
CONFIG_KEYS: dict[str, tuple[type, ...]] = {
    "host": (str,),
    "port": (int,),
    "store": (str,),
    "data_dir": (str,),
    "idle_timeout": (int, float),
    "retry_delay": (int, float),
    "isolation": (bool,),
    "box_tmp_mb": (int,),
    "box_max_tasks": (int,),
}
DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 8080,
    "data_dir": ".triggerfish-server",
    "idle_timeout": 300,
    "isolation": True,
}


@click.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default 8080; 0 picks a free one).")
@click.option("--store", "store_url", default=None, help="Store URL (default: sqlite:///DATA_DIR/store.db).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False), help="Bundles, dependencies, the store.")
@click.option(
    "--config", "config_file", default=None, type=click.Path(dir_okay=False), help="A TOML file of these settings."
)
@click.option(
    "--no-isolation",
    is_flag=True,
    default=None,
    help="Run apps unboxed, as this server's user (unsafe unless every app is trusted; see docs/security.md).",
)
def serve(
    host: str | None,
    port: int | None,
    store_url: str | None,
    data_dir: str | None,
    config_file: str | None,
    no_isolation: bool | None,
) -> None:
    """Serve every deployed app, each under /APP/, with the control API under /-/api/v1/.

    Deploy to it with `triggerfish deploy`. Every platform endpoint needs an API
    key; the first start makes an admin key, prints it once and writes it to
    DATA_DIR/admin.key. SIGTERM (or Ctrl-C) stops accepting requests, lets
    what is in flight finish, and exits.

    Every app's code runs in a box (bubblewrap; as root, as a uid of the
    app's own); without bubblewrap the server refuses to start unless given
    --no-isolation (or `isolation = false` in the --config file).
    """
    settings = dict(DEFAULTS)
    if config_file is not None:
        settings.update(_read_config(Path(config_file)))
    given = {"host": host, "port": port, "store": store_url, "data_dir": data_dir}
    if no_isolation:
        given["isolation"] = False
    settings.update({k: v for k, v in given.items() if v is not None})
    sys.exit(asyncio.run(_run(settings)))


def _read_config(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--config") from None
    except tomllib.TOMLDecodeError as exc:
        raise click.BadParameter(f"{path} is not valid TOML: {exc}", param_hint="--config") from None
    for key, value in document.items():
        if key not in CONFIG_KEYS:
            raise click.BadParameter(
                f"{path}: unknown key {key!r}; valid: {', '.join(CONFIG_KEYS)}", param_hint="--config"
            )
        if (isinstance(value, bool) and bool not in CONFIG_KEYS[key]) or not isinstance(value, CONFIG_KEYS[key]):
            kinds = " or ".join(t.__name__ for t in CONFIG_KEYS[key])
            raise click.BadParameter(f"{path}: {key} must be a {kinds}, not {value!r}", param_hint="--config")
    return document


async def _run(settings: dict[str, Any]) -> int:
    from triggerfish.cli.serving import bind, serve_until_stopped, stop_on_signals
    from triggerfish.errors import IsolationError, UnknownStoreURLError
    from triggerfish.gateway import GatewayServer
    from triggerfish.isolation.box import DEFAULT_MAX_TASKS, DEFAULT_TMP_MB
    from triggerfish.isolation.policy import UNBOXED_WARNING, Isolation
    from triggerfish.retry import RetryPolicy
    from triggerfish.server.host import Host
    from triggerfish.server.host_http import HostASGI

    try:
        isolation = Isolation(
            enabled=bool(settings["isolation"]),
            tmp_mb=settings.get("box_tmp_mb", DEFAULT_TMP_MB),
            max_tasks=settings.get("box_max_tasks", DEFAULT_MAX_TASKS),
        )
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_BAD_SETUP
    try:
        isolation.check()
    except IsolationError as exc:
        click.echo(f"error: apps cannot be boxed here: {exc}", err=True)
        click.echo(
            "Apps run in a box by default. Install bubblewrap (Debian: apt-get install bubblewrap), or pass "
            "--no-isolation (or `isolation = false` in the --config file) to serve only trusted apps unboxed.",
            err=True,
        )
        return EXIT_BAD_SETUP
    if not isolation.enabled:
        click.echo(UNBOXED_WARNING, err=True)
    stop = stop_on_signals()
    delay = settings.get("retry_delay")
    host = Host(
        data_dir=Path(settings["data_dir"]),
        store_url=settings.get("store"),
        idle_timeout=float(settings["idle_timeout"]),
        retry_policy=None if delay is None else RetryPolicy(base=float(delay), ceiling=max(float(delay) * 4, 1.0)),
        isolation=isolation,
    )
    try:
        await host.start()
    except UnknownStoreURLError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_BAD_SETUP
    server = GatewayServer(HostASGI(host), settings["host"], settings["port"], handle_signals=False)
    if not await bind(server, settings["host"], settings["port"]):
        await host.stop(drain=False)
        return EXIT_BAD_SETUP
    if host.first_admin_key is not None:
        click.echo(f"admin key (shown once; also in {host.data_dir / 'admin.key'}): {host.first_admin_key}")
    for name, platform in sorted(host.apps.items()):
        click.echo(f"app {name!r}: version {platform.current.number}, {len(platform.current.specs)} functions")
    click.echo(f"isolation: {isolation.describe()}")
    click.echo(f"serving on {server.url} (apps under {server.url}/APP/, control API under {server.url}/-/api/v1/)")
    await serve_until_stopped(server, stop, lambda: host.stop(drain=True))
    return 0
