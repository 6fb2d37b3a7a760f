"""`triggerfish dev APP`: the whole platform in one process on the embedded store, with hot reload.

Exit codes: 0 after Ctrl-C (or SIGTERM) once work in flight has drained;
2 when the app does not load or the address cannot be bound.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from triggerfish.cli.serving import connection_options, run_platform

if TYPE_CHECKING:
    from triggerfish.gateway.connections import ConnectionLimits
    from triggerfish.gateway.forwarded import TrustedProxies
    from triggerfish.server.request_guard import RequestRules

EXIT_LOAD_FAILED = 2


@click.command()
@click.argument("target", metavar="APP")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option(
    "--data-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the store and the functions' working directories live (default: .triggerfish/NAME, NAME being"
    " the app's name; one `dev` at a time per directory).",
)
@click.option("--no-reload", is_flag=True, help="Do not reload the app when its files change.")
@click.option(
    "--retry-delay",
    type=click.FloatRange(0, 900),
    default=None,
    help="Seconds before the first retry of a failed async invocation, doubling after (default: Lambda's 60).",
)
@click.option(
    "--lease-margin",
    type=click.FloatRange(0, 3600, min_open=True),
    default=None,
    help="Seconds past a function's timeout before an async invocation whose run died (a kill -9) runs again"
    " (default: 30).",
)
@click.option("--stage", default=None, help="Apply this stage of triggerfish.toml.")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="FUNCTION.SETTING=VALUE",
    help="Override a function setting (repeatable; FUNCTION may be *).",
)
@connection_options(defaults=True)
@click.option("--quiet", "-q", is_flag=True, help="Do not print each invocation's log lines as it ends.")
@click.option(
    "--isolate",
    is_flag=True,
    help="Run the app in a box as `triggerfish serve` does (bubblewrap; as root, as a uid of its own).",
)
def dev(
    target: str,
    host: str,
    port: int,
    data_dir: Path | None,
    no_reload: bool,
    retry_delay: float | None,
    lease_margin: float | None,
    stage: str | None,
    settings: tuple[str, ...],
    max_connections: int,
    header_timeout: float,
    keep_alive_timeout: float,
    allowed_hosts: tuple[str, ...],
    allowed_origins: tuple[str, ...],
    trusted_proxies: tuple[str, ...],
    quiet: bool,
    isolate: bool,
) -> None:
    """Run APP (a directory, path/to/app.py[:attr] or package.module[:attr]) with every trigger live.

    A directory runs its app.py, or the file triggerfish.toml's `app =` names.

    HTTP routes, the event bus, queues, topics and schedules all run here, on a
    SQLite store in --data-dir. Saved changes are served within a second;
    an edit that breaks the import prints the traceback and the last good
    version keeps serving. Ctrl-C lets work in flight finish, then exits.

    The platform endpoints (/-/) answer only requests whose Host header names
    this server (localhost, 127.0.0.1, [::1], the bound address, --allowed-host)
    and, from a browser, pages of its own origin or --allowed-origin; requests
    that change anything must send Content-Type: application/json.

    With --isolate the app's code runs in the box it gets on a server: it
    sees its own directory (read-only, without --data-dir), the Python
    runtime and its /tmp.

    Each invocation's output, its error and a REPORT line (status, duration,
    billed time, cold start) print as it ends, coloured on a terminal;
    --quiet stops that. Metrics are at /-/metrics.
    """
    from triggerfish.cli.data_lock import DataDirBusy, DataDirLock
    from triggerfish.cli.project import local_app
    from triggerfish.config import parse_override
    from triggerfish.errors import DeclarationError, InvalidInputError
    from triggerfish.gateway.connections import ConnectionLimits
    from triggerfish.gateway.forwarded import TrustedProxies
    from triggerfish.server.request_guard import RequestRules

    app = local_app(target, stage)
    target = app.target
    data_dir = data_dir or app.data_dir
    try:
        # Held until this process ends, however it ends: the kernel drops the lock.
        DataDirLock(data_dir).acquire()
    except DataDirBusy as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_LOAD_FAILED)

    overrides: dict[str, dict[str, Any]] = {}
    try:
        for text in settings:
            function, setting, value = parse_override(text)
            overrides.setdefault(function, {})[setting] = value
    except DeclarationError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    from triggerfish.retry import RetryPolicy

    retry_policy = None if retry_delay is None else RetryPolicy(base=retry_delay, ceiling=max(retry_delay * 4, 1.0))
    options: dict[str, Any] = {
        "data_dir": data_dir,
        "stage": stage,
        "overrides": overrides,
        "retry_policy": retry_policy,
        # `triggerfish secrets set NAME` against dev: kept as a server keeps them, the key beside its store.
        "secrets_key_file": Path(data_dir) / "secrets.key",
    }
    if lease_margin is not None:
        options["lease_margin"] = lease_margin
    limits = ConnectionLimits(max_connections, header_timeout, keep_alive_timeout)
    try:
        rules = RequestRules.local(host, allowed_hosts, allowed_origins)
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc), param_hint="--allowed-host/--allowed-origin") from None
    try:
        proxies = TrustedProxies.parse(trusted_proxies, where="--trusted-proxy")
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc), param_hint="--trusted-proxy") from None
    if isolate:
        options["box_for"] = _box_for(data_dir)
    code = run_platform(_run(target, host, port, not no_reload, options, limits, rules, quiet=quiet, proxies=proxies))
    sys.exit(code)


def _box_for(data_dir: Path) -> Any:
    """What boxes each version with --isolate: its project directory read-only, the data directory hidden."""
    from triggerfish.errors import IsolationError
    from triggerfish.isolation.policy import Isolation
    from triggerfish.server.versions import VersionSource
    from triggerfish.store import Store

    isolation = Isolation()
    try:
        isolation.check()
    except IsolationError as exc:
        click.echo(f"error: --isolate: {exc}", err=True)
        click.echo("Install bubblewrap (Debian: apt-get install bubblewrap), or run without --isolate.", err=True)
        sys.exit(EXIT_LOAD_FAILED)
    click.echo(f"isolation: {isolation.describe()}")

    async def box_for(source: VersionSource, store: Store) -> Any:
        target = source.target or ""
        app_dir = source.app_dir
        code = app_dir.resolve() if app_dir is not None and target.partition(":")[0].endswith(".py") else Path.cwd()
        # One app per dev store: its uid (as root) is recorded under a fixed name.
        return await isolation.box("dev", app_dir=code, code=code, store=store, hide=[data_dir])

    return box_for


async def _run(
    target: str,
    host: str,
    port: int,
    reload: bool,
    options: dict[str, Any],
    limits: ConnectionLimits,
    rules: RequestRules,
    *,
    quiet: bool = False,
    proxies: TrustedProxies | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM; `options` are the Platform's."""
    from triggerfish.aws.credentials import DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY, function_environment
    from triggerfish.cli.serving import bind, serve_until_stopped, stop_on_signals
    from triggerfish.errors import AppLoadError, DeclarationError, SecretsKeyError
    from triggerfish.gateway import GatewayServer
    from triggerfish.loader import describe_functions
    from triggerfish.observe.metrics import Metrics
    from triggerfish.observe.otlp import OtlpExport
    from triggerfish.observe.terminal import InvocationPrinter
    from triggerfish.server.http import platform_asgi
    from triggerfish.server.platform import Platform, ReloadResult
    from triggerfish.server.reload import start_watching

    stop = stop_on_signals()

    try:
        export = OtlpExport.from_environment(os.environ)
    except DeclarationError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_LOAD_FAILED
    platform = Platform(target, **options)
    # A developer expects to see what each invocation was given, and re-run it (functions may say otherwise).
    platform.keep_inputs = True
    if export is not None:
        export.watch(platform)
    metrics = Metrics()
    metrics.watch(platform)  # before the start: invocations queued by an earlier run count too
    if not quiet:
        platform.record_listeners.append(InvocationPrinter(sys.stdout, colour=sys.stdout.isatty()))
    server = GatewayServer(
        platform_asgi(platform, rules, metrics),
        host,
        port,
        handle_signals=False,
        limits=limits,
        trusted_proxies=proxies,
    )
    # Bound first, so the functions' AWS_ENDPOINT_URL names the real port (also with --port 0) when the app's
    # code is imported; nothing is told the address before "serving on" below.
    if not await bind(server, host, port):
        return EXIT_LOAD_FAILED
    platform.environment = function_environment(server.url, DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY)
    try:
        await platform.start()
    except (AppLoadError, DeclarationError, SecretsKeyError) as exc:
        if isinstance(exc, AppLoadError) and exc.details:
            click.echo(exc.details.rstrip(), err=True)
        click.echo(f"error: {exc}", err=True)
        await server.stop()
        return EXIT_LOAD_FAILED
    version = platform.current

    def reloaded(result: ReloadResult, paths: list[str]) -> None:
        changed = ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")
        if result.ok:
            current = platform.current
            click.echo(f"reloaded ({changed}): version {result.version} in {result.seconds * 1000:.0f} ms")
            click.echo(describe_functions(current.specs))
        else:
            if result.details:
                click.echo(result.details.rstrip(), err=True)
            click.echo(f"reload failed ({changed}): {result.error}", err=True)
            click.echo(f"still serving version {result.version}", err=True)

    app_dir = platform.app_dir
    watcher = await start_watching(platform, app_dir.resolve(), on_reload=reloaded) if reload and app_dir else None
    click.echo(f"app {version.app_name!r} version {version.number}: {len(version.specs)} functions")
    click.echo(describe_functions(version.specs))
    click.echo(
        f"serving on {server.url} (platform endpoints under {server.url}/-/, the dashboard at {server.url}/-/ui/;"
        " Ctrl-C to stop)",
        color=False,
    )
    try:
        await serve_until_stopped(server, stop, lambda: platform.stop(drain=True))
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if export is not None:
            await asyncio.to_thread(export.shutdown)  # what is queued goes out
    return 0
