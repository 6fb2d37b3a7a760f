"""`triggerfish serve`: the long-running server that teams deploy apps to.

Exit codes: 0 after SIGTERM or Ctrl-C once work in flight has drained; 2 when
the configuration is wrong or the address cannot be bound.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from triggerfish.cli.serving import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_KEEP_ALIVE,
    DEFAULT_MAX_CONNECTIONS,
    connection_options,
    run_platform,
)

if TYPE_CHECKING:
    from triggerfish.deploy.bundle import BundleLimits

EXIT_BAD_SETUP = 2
#: The fields of `BundleLimits`, each the setting `bundle_<field>`.
BUNDLE_LIMITS = (
    "max_file_bytes",
    "max_total_bytes",
    "max_files",
    "max_upload_bytes",
    "max_path_bytes",
    "max_depth",
    "max_ratio",
)
#: Keys of the --config file, with the types they take; the command-line options override them.
CONFIG_KEYS: dict[str, tuple[type, ...]] = {
    "host": (str,),
    "port": (int,),
    "store": (str,),
    "data_dir": (str,),
    "idle_timeout": (int, float),
    "retry_delay": (int, float),
    "role": (str,),
    "advertise": (str,),
    "lease_margin": (int, float),
    # A store part from its own URL (docs/store.md): the event log, the queues, the key-value records.
    "store_log": (str,),
    "store_queues": (str,),
    "store_kv": (str,),
    # How deploys install requirements and which bundles they take (docs/deploy.md).
    "pip_args": (list,),
    "pip_source_builds": (bool,),
    **{f"bundle_{name}": (int,) for name in BUNDLE_LIMITS},
    "max_connections": (int,),
    "header_timeout": (int, float),
    "keep_alive_timeout": (int, float),
    "allowed_hosts": (list,),
    "allowed_origins": (list,),
    # Reverse proxies whose X-Forwarded-* headers are believed (docs/http.md, "Behind a proxy").
    "trusted_proxies": (list,),
    "isolation": (bool,),
    "box_tmp_mb": (int,),
    "box_max_tasks": (int,),
    # The secrets key's file (else $TRIGGERFISH_SECRETS_KEY, else DATA_DIR/secrets.key), and how long the audit
    # log keeps entries (docs/security.md).
    "secrets_key_file": (str,),
    "audit_retention_days": (int, float),
}
#: What `--role` takes, and the node roles each means.
ROLE_CHOICES: dict[str, tuple[str, ...]] = {
    "all": ("gateway", "worker"),
    "gateway": ("gateway",),
    "worker": ("worker",),
}
DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 8080,
    "data_dir": ".triggerfish-server",
    "idle_timeout": 300,
    "max_connections": DEFAULT_MAX_CONNECTIONS,
    "header_timeout": DEFAULT_HEADER_TIMEOUT,
    "keep_alive_timeout": DEFAULT_KEEP_ALIVE,
    "allowed_hosts": None,
    "allowed_origins": [],
    "isolation": True,
}


@click.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default 8080; 0 picks a free one).")
@click.option("--store", "store_url", default=None, help="Store URL (default: sqlite:///DATA_DIR/store.db).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False), help="Bundles, dependencies, the store.")
@click.option(
    "--role",
    default=None,
    type=click.Choice(sorted(ROLE_CHOICES)),
    help="all (default): everything; gateway: HTTP and the control API; worker: asynchronous work, queues,"
    " buses, topics and schedules, with no port open.",
)
@click.option("--advertise", default=None, help="The URL other nodes and `status` show for this node.")
@click.option(
    "--config", "config_file", default=None, type=click.Path(dir_okay=False), help="A TOML file of these settings."
)
@connection_options(defaults=False)
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
    role: str | None,
    advertise: str | None,
    config_file: str | None,
    max_connections: int | None,
    header_timeout: float | None,
    keep_alive_timeout: float | None,
    allowed_hosts: tuple[str, ...],
    allowed_origins: tuple[str, ...],
    trusted_proxies: tuple[str, ...],
    no_isolation: bool | None,
) -> None:
    """Serve every deployed app, each under /APP/, with the control API under /-/api/v1/.

    Deploy to it with `triggerfish deploy`. Every platform endpoint needs an API
    key; the first start makes an admin key, prints it once and writes it to
    DATA_DIR/admin.key. SIGTERM (or Ctrl-C) stops accepting requests, lets
    what is in flight finish, and exits. Nodes started on one shared store
    (--store postgresql://...) form one platform (see docs/cluster.md).

    The platform endpoints (/-/) answer any Host header unless --allowed-host
    names the ones to answer (a proxy in front usually decides), browsers only
    from pages of the server's own origin or --allowed-origin, and requests that
    change anything only with Content-Type: application/json.

    Every app's code runs in a box (bubblewrap; as root, as a uid of the
    app's own); without bubblewrap the server refuses to start unless given
    --no-isolation (or `isolation = false` in the --config file).
    """
    settings = dict(DEFAULTS)
    if config_file is not None:
        settings.update(_read_config(Path(config_file)))
    given = {
        "host": host,
        "port": port,
        "store": store_url,
        "data_dir": data_dir,
        "role": role,
        "advertise": advertise,
        "max_connections": max_connections,
        "header_timeout": header_timeout,
        "keep_alive_timeout": keep_alive_timeout,
        "allowed_hosts": list(allowed_hosts) or None,
        "allowed_origins": list(allowed_origins) or None,
        "trusted_proxies": list(trusted_proxies) or None,
    }
    if no_isolation:
        given["isolation"] = False
    settings.update({k: v for k, v in given.items() if v is not None})
    sys.exit(run_platform(_run(settings)))


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
        kinds = CONFIG_KEYS[key]
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(t.__name__ for t in kinds)
            raise click.BadParameter(f"{path}: {key} must be a {names}, not {value!r}", param_hint="--config")
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise click.BadParameter(f"{path}: {key} must be a list of strings, not {value!r}", param_hint="--config")
    try:
        _bundle_limits(document)
    except ValueError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--config") from None
    retention = document.get("audit_retention_days", 90)
    if not 0 < retention <= 36500:
        raise click.BadParameter(
            f"{path}: audit_retention_days must be more than 0 and at most 36500, not {retention!r}",
            param_hint="--config",
        )
    if document.get("role", "all") not in ROLE_CHOICES:
        raise click.BadParameter(
            f"{path}: role must be one of {', '.join(sorted(ROLE_CHOICES))}, not {document['role']!r}",
            param_hint="--config",
        )
    return document


def _describe_secrets(host: Any) -> str:
    ring = host.secrets.keyring
    if ring is None:
        return "no key on this node: functions that declare secrets fail here until it is given the cluster's key"
    return f"sealed with key {ring.sealing.id} from {ring.source}" + (
        f" (and {len(ring.keys) - 1} older key(s) that only open)" if len(ring.keys) > 1 else ""
    )


def _bundle_limits(settings: dict[str, Any]) -> BundleLimits:
    """The `bundle_*` settings as limits (the defaults for those not given); ValueError for a bad one."""
    from triggerfish.deploy.bundle import BundleLimits

    return BundleLimits(**{name: settings[f"bundle_{name}"] for name in BUNDLE_LIMITS if f"bundle_{name}" in settings})


async def _run(settings: dict[str, Any]) -> int:
    from triggerfish.cli.serving import bind, serve_until_stopped, stop_on_signals
    from triggerfish.errors import (
        DeclarationError,
        InvalidInputError,
        IsolationError,
        SecretsKeyError,
        StoreError,
        UnknownStoreURLError,
    )
    from triggerfish.gateway import GatewayServer
    from triggerfish.gateway.connections import ConnectionLimits
    from triggerfish.gateway.forwarded import TrustedProxies
    from triggerfish.isolation.box import DEFAULT_MAX_TASKS, DEFAULT_TMP_MB
    from triggerfish.isolation.policy import UNBOXED_WARNING, Isolation
    from triggerfish.observe.otlp import OtlpExport
    from triggerfish.retry import RetryPolicy
    from triggerfish.server.host import Host
    from triggerfish.server.host_http import HostASGI
    from triggerfish.server.request_guard import RequestRules

    try:
        limits = ConnectionLimits(
            settings["max_connections"], float(settings["header_timeout"]), float(settings["keep_alive_timeout"])
        )
        rules = RequestRules.serving(settings["allowed_hosts"], settings["allowed_origins"])
        proxies = TrustedProxies.parse(settings.get("trusted_proxies") or [])
        lease_margin = float(settings.get("lease_margin", 30.0))
        if not 0 < lease_margin <= 3600:
            raise InvalidInputError(f"lease_margin must be from more than 0 to 3600 seconds, not {lease_margin:g}")
        isolation = Isolation(
            enabled=bool(settings["isolation"]),
            tmp_mb=settings.get("box_tmp_mb", DEFAULT_TMP_MB),
            max_tasks=settings.get("box_max_tasks", DEFAULT_MAX_TASKS),
        )
    except (InvalidInputError, ValueError) as exc:
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
    try:
        export = OtlpExport.from_environment(os.environ)
    except DeclarationError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_BAD_SETUP
    stop = stop_on_signals()
    delay = settings.get("retry_delay")
    roles = ROLE_CHOICES[settings.get("role") or "all"]
    gateway = "gateway" in roles
    advertise = settings.get("advertise")
    if advertise is None and gateway:
        advertise = f"http://{settings['host']}:{settings['port']}"
    host = Host(
        data_dir=Path(settings["data_dir"]),
        store_url=settings.get("store"),
        idle_timeout=float(settings["idle_timeout"]),
        retry_policy=None if delay is None else RetryPolicy(base=float(delay), ceiling=max(float(delay) * 4, 1.0)),
        roles=roles,
        address=advertise,
        lease_margin=lease_margin,
        pip_args=tuple(settings.get("pip_args", ())),
        source_builds=bool(settings.get("pip_source_builds", False)),
        bundle_limits=_bundle_limits(settings),
        isolation=isolation,
        secrets_key_file=Path(settings["secrets_key_file"]) if "secrets_key_file" in settings else None,
        audit_retention=float(settings.get("audit_retention_days", 90)) * 86400.0,
        store_parts={
            part: settings[f"store_{part}"] for part in ("log", "queues", "kv") if f"store_{part}" in settings
        },
        export=export,
    )
    try:
        await host.start()
    except (UnknownStoreURLError, StoreError, SecretsKeyError) as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_BAD_SETUP
    if host.first_admin_key is not None:
        click.echo(f"admin key (shown once; also in {host.data_dir / 'admin.key'}): {host.first_admin_key}")
    for name, platform in sorted(host.apps.items()):
        click.echo(f"app {name!r}: version {platform.current.number}, {len(platform.current.specs)} functions")
    click.echo(f"isolation: {isolation.describe()}")
    click.echo(f"secrets: {_describe_secrets(host)}")
    if export is not None:
        click.echo("traces: exported over OTLP (OTEL_* variables); also kept here for `triggerfish traces`")
    if not gateway:
        click.echo(f"node {host.node.id}: worker only (no port open); Ctrl-C or SIGTERM stops it")
        await stop.wait()
        click.echo("stopping: letting work in flight finish ...")
        await host.stop(drain=True)
        click.echo("stopped")
        return 0
    server = GatewayServer(
        HostASGI(host, rules=rules),
        settings["host"],
        settings["port"],
        handle_signals=False,
        limits=limits,
        trusted_proxies=proxies,
    )
    if not await bind(server, settings["host"], settings["port"]):
        await host.stop(drain=False)
        return EXIT_BAD_SETUP
    if settings.get("advertise") is None and settings["port"] == 0:
        await host.advertise(server.url)  # the port the system picked
    click.echo(f"node {host.node.id} ({', '.join(roles)})")
    click.echo(
        f"serving on {server.url} (apps under {server.url}/APP/, control API under {server.url}/-/api/v1/,"
        f" dashboard at {server.url}/-/ui/)"
    )
    await serve_until_stopped(server, stop, lambda: host.stop(drain=True))
    return 0
