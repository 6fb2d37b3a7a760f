"""Project configuration: `triggerfish.toml` (or `[tool.triggerfish]` in pyproject.toml), stages, precedence.

    name = "shop"                         # the app's name on a server (`triggerfish deploy`; optional)
    app = "app.py:app"                    # what `triggerfish run` loads (optional)
    network = "none"                      # no network for the app's code in its box (default "allowed")
    boto3 = false                         # leave the runtime's boto3 out (default true: importable, as on Lambda)

    [functions."*"]                       # every function
    timeout = 10

    [functions.create_order]              # one function
    memory_mb = 256
    env = { TABLE = "orders" }

    [stages.prod.functions.create_order]  # only with --stage prod
    concurrency = 50

    [buses.default]                       # how long the bus's archive keeps events (default 7 days)
    archive_retention = 86400

    [mqtt]                                # the broker of @app.on_mqtt (TRIGGERFISH_MQTT_URL overrides)
    url = "mqtt://127.0.0.1:1883"

    [amqp]                                # the broker of @app.on_amqp (TRIGGERFISH_AMQP_URL overrides)
    url = "amqp://guest:guest@127.0.0.1:5672/"

    [nats]                                # the server of @app.on_nats (TRIGGERFISH_NATS_URL overrides)
    url = "nats://127.0.0.1:4222"

    [redis]                               # the server of @app.on_redis_stream (TRIGGERFISH_REDIS_URL overrides)
    url = "redis://127.0.0.1:6379/0"

    [queues.orders]                       # queue settings, read by the queue runtime
    visibility_timeout = 60
    max_receives = 5
    dead_letter = "orders-dlq"

A function's settings are resolved in this order, each layer overriding
the one before: the decorator, `[functions."*"]`, `[functions.NAME]`, the
stage's `"*"`, the stage's `NAME`, command-line `"*"`, command-line `NAME`.
`env` tables merge key by key; every other setting is replaced.

Every mistake names the file, the table and the key: unknown keys (with
the closest valid name), wrong types, values out of range, and sections
for functions the app does not declare.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from triggerfish.errors import DeclarationError
from triggerfish.model import (
    SETTING_NAMES,
    FunctionSpec,
    apply_settings,
    check_app_name,
    check_resource_name,
    check_setting,
)
from triggerfish.model import unknown_name_message as _unknown

if TYPE_CHECKING:
    from triggerfish.app import App

CONFIG_FILE = "triggerfish.toml"
ALL = "*"

_TOP_KEYS = frozenset(
    {"name", "app", "network", "boto3", "functions", "stages", "queues", "topics", "buses", "tables"}
    | {"mqtt", "amqp", "nats", "redis"}
)
#: `[buckets.NAME]`: buckets that exist at start, and their `notifications` (docs/objects.md).
_TOP_KEYS = _TOP_KEYS | {"buckets"}
#: Keys of [mqtt]: the broker's URL (credentials may come from TRIGGERFISH_MQTT_URL instead) and a client-id prefix.
MQTT_KEYS = frozenset({"url", "client_id"})
#: Values of `network`: what the app's code may reach from its box (docs/security.md).
NETWORK_MODES = ("allowed", "none")
_STAGE_KEYS = frozenset({"functions", "queues", "topics", "buses"})
#: Keys of [queues.NAME] and [topics.NAME], with the types they take.
RESOURCE_KEYS: dict[str, tuple[type, ...]] = {
    "visibility_timeout": (int, float),
    "max_receives": (int,),
    "dead_letter": (str,),
    "retention": (int, float),
    "fifo": (bool,),
    "dedup_window": (int, float),
}

#: Keys of [buses.NAME]: how long (seconds) and how much (bytes) of the bus's archive is kept.
BUS_KEYS: dict[str, tuple[type, ...]] = {
    "archive_retention": (int, float),
    "archive_max_bytes": (int,),
}
_KINDS = {"queues": "queue", "topics": "topic", "buses": "bus"}


_TYPE_NAMES: dict[tuple[type, ...], str] = {
    (int, float): "a number",
    (int,): "a whole number",
    (str,): "a string",
    (bool,): "true or false",
}


@dataclass(frozen=True, slots=True)
class StageConfig:
    """What one `[stages.NAME]` table changes."""

    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    topics: dict[str, dict[str, Any]] = field(default_factory=dict)
    buses: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """A project's configuration as read from its file; empty when there is no file."""

    #: The file it came from (None: no file).
    path: Path | None = None
    #: The name the app is deployed under (`name = "shop"`); None: the file does not say.
    name: str | None = None
    #: The app to load, as written in the file (`app = "app.py:app"`), relative to the file.
    app: str | None = None
    #: What the app's code may reach when it runs in a box: "allowed" (the host's network) or "none".
    network: str = "allowed"
    #: Whether the app's code can import the boto3 the runtime ships (see triggerfish.runtime.bundled).
    boto3: bool = True
    #: Settings per function name, "*" for all; values already checked one by one.
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: dict[str, StageConfig] = field(default_factory=dict)
    #: `[queues.NAME]` and `[topics.NAME]` tables, keys checked, for the queue and topic runtime.
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    topics: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: `[buses.NAME]` tables: the archive's retention.
    buses: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: `[mqtt]`: `url` (checked) and `client_id`, for `@app.on_mqtt`.
    mqtt: dict[str, str] = field(default_factory=dict)
    #: `[amqp]`: `url` (checked), for `@app.on_amqp`.
    amqp: dict[str, str] = field(default_factory=dict)
    #: `[nats]` and `[redis]`: `url` (checked), for `@app.on_nats` and `@app.on_redis_stream`.
    nats: dict[str, str] = field(default_factory=dict)
    redis: dict[str, str] = field(default_factory=dict)
    #: `[tables.NAME]`: the tables that exist at start, with their keys (checked by triggerfish.tables.schema).
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: `[buckets.NAME]` tables: buckets made at start (names checked by S3's rules), with their notification
    #: configuration when it has `notifications` (a NotificationConfiguration under that key).
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def bus_settings(self, stage: str | None = None) -> dict[str, dict[str, Any]]:
        """Bus tables with the stage's overrides applied."""
        return _merge_tables(self.buses, self.stages[stage].buses if stage in self.stages else {})

    def queue_settings(self, stage: str | None = None) -> dict[str, dict[str, Any]]:
        """Queue tables with the stage's overrides applied."""
        return _merge_tables(self.queues, self.stages[stage].queues if stage in self.stages else {})

    def topic_settings(self, stage: str | None = None) -> dict[str, dict[str, Any]]:
        """Topic tables with the stage's overrides applied."""
        return _merge_tables(self.topics, self.stages[stage].topics if stage in self.stages else {})


def load_config(app_dir: Path | str) -> ProjectConfig:
    """Read `triggerfish.toml`, or `[tool.triggerfish]` of pyproject.toml, in `app_dir`.

    No file (or a pyproject.toml without the table) gives an empty config.
    Having both is an error: one of them would be ignored.
    """
    directory = Path(app_dir)
    own = directory / CONFIG_FILE
    pyproject = directory / "pyproject.toml"
    tool = _read(pyproject).get("tool", {}).get("triggerfish") if pyproject.is_file() else None
    if own.is_file():
        if tool is not None:
            raise DeclarationError(
                f"{own} and [tool.triggerfish] in {pyproject} both configure Triggerfish; keep one of them"
            )
        return _parse(_read(own), own, "")
    if tool is not None:
        if not isinstance(tool, dict):
            raise DeclarationError(f"{pyproject}: [tool.triggerfish] must be a table")
        return _parse(tool, pyproject, "tool.triggerfish.")
    return ProjectConfig()


def resolve_functions(
    app: App,
    config: ProjectConfig,
    *,
    stage: str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, FunctionSpec]:
    """The app's functions with the configuration applied: decorator < file < stage < overrides.

    `overrides` maps a function name, or "*" for all, to settings (from
    command-line flags). A stage the file does not define, or settings for
    a function the app does not declare, are errors.
    """
    specs = app.functions
    where = str(config.path) if config.path else "the configuration"
    if stage is not None and stage not in config.stages:
        known = ", ".join(sorted(config.stages)) or "none are defined"
        raise DeclarationError(f"{where}: unknown stage {stage!r} (stages: {known}); add [stages.{stage}]")
    # Each layer: a label to name it in errors ({} is the function) and its settings by function.
    layers: list[tuple[str, Mapping[str, Mapping[str, Any]]]] = [(f"{where} [functions.{{}}]", config.functions)]
    if stage is not None:
        layers.append((f"{where} [stages.{stage}.functions.{{}}]", config.stages[stage].functions))
    if overrides:
        layers.append(("the command-line override for {}", _checked_overrides(overrides)))
    for label, tables in layers:
        for name in tables:
            if name != ALL and name not in specs:
                message = _unknown("function", name, specs)
                raise DeclarationError(
                    f"{label.format(name)}: {message}; the app declares {', '.join(specs) or 'none'}"
                )
    resolved: dict[str, FunctionSpec] = {}
    for name, spec in specs.items():
        settings = spec.settings
        for label, tables in layers:
            for key in (ALL, name):
                if key in tables:
                    try:
                        settings = apply_settings(settings, tables[key])
                    except ValueError as exc:
                        raise DeclarationError(f"{label.format(key)} (function {name!r}): {exc}") from None
        resolved[name] = spec if settings == spec.settings else replace(spec, settings=settings)
    return resolved


def parse_override(text: str) -> tuple[str, str, Any]:
    """`"create_order.memory_mb=256"` -> ("create_order", "memory_mb", 256); the value is read as TOML.

    `"*.timeout=30"` applies to every function; a bare word value is a string (`env` cannot be set this way).
    """
    target, eq, value_text = text.partition("=")
    function, dot, setting = target.strip().rpartition(".")
    if not eq or not dot or not function or not setting:
        raise DeclarationError(f"override {text!r}: write FUNCTION.SETTING=VALUE, e.g. create_order.memory_mb=256")
    if setting not in SETTING_NAMES:
        raise DeclarationError(f"override {text!r}: {_unknown('setting', setting, SETTING_NAMES)}")
    try:
        value = tomllib.loads(f"v = {value_text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text.strip()
    try:
        return function, setting, check_setting(setting, value)
    except ValueError as exc:
        raise DeclarationError(f"override {text!r}: {exc}") from None


# --- reading the file ------------------------------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise DeclarationError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeclarationError(f"{path}: cannot be read: {exc}") from None


def _parse(document: dict[str, Any], path: Path, prefix: str) -> ProjectConfig:
    def fail(table: str, message: str) -> DeclarationError:
        return DeclarationError(f"{path}: [{prefix}{table}]: {message}" if table else f"{path}: {message}")

    for key in document:
        if key not in _TOP_KEYS:
            raise fail("", f"{_unknown('key', key, _TOP_KEYS)}")
    name = document.get("name")
    if name is not None:
        try:
            check_app_name(name)
        except ValueError as exc:
            raise fail("", f"name: {exc}") from None
    app = document.get("app")
    if app is not None and (not isinstance(app, str) or not app):
        raise fail("", f"app must be a string such as 'app.py:app', not {app!r}")
    network = document.get("network", "allowed")
    if network not in NETWORK_MODES:
        raise fail("", f"network must be one of {', '.join(map(repr, NETWORK_MODES))}, not {network!r}")
    boto3 = document.get("boto3", True)
    if not isinstance(boto3, bool):
        raise fail("", f"boto3 must be true (the runtime's boto3 is importable) or false (left out), not {boto3!r}")
    stages: dict[str, StageConfig] = {}
    for stage, body in _tables(document.get("stages", {}), "stages", fail).items():
        for key in body:
            if key not in _STAGE_KEYS:
                raise fail(f"stages.{stage}", _unknown("key", key, _STAGE_KEYS))
        stages[stage] = StageConfig(
            functions=_functions(body.get("functions", {}), f"stages.{stage}.functions", fail),
            queues=_resources(body.get("queues", {}), f"stages.{stage}.queues", fail),
            topics=_resources(body.get("topics", {}), f"stages.{stage}.topics", fail),
            buses=_resources(body.get("buses", {}), f"stages.{stage}.buses", fail, BUS_KEYS),
        )
    return ProjectConfig(
        path=path,
        name=name,
        app=app,
        network=network,
        boto3=boto3,
        functions=_functions(document.get("functions", {}), "functions", fail),
        stages=stages,
        queues=_resources(document.get("queues", {}), "queues", fail),
        topics=_resources(document.get("topics", {}), "topics", fail),
        buses=_resources(document.get("buses", {}), "buses", fail, BUS_KEYS),
        mqtt=_mqtt(document.get("mqtt", {}), fail),
        amqp=_amqp(document.get("amqp", {}), fail),
        nats=_source_url("nats", document.get("nats", {}), fail),
        redis=_source_url("redis", document.get("redis", {}), fail),
        tables=_table_schemas(document.get("tables", {}), fail),
        buckets=_buckets(document.get("buckets", {}), fail),
    )


def _source_url(kind: str, value: object, fail: Any) -> dict[str, str]:
    """`[nats]` or `[redis]`: the server's `url` (TRIGGERFISH_NATS_URL / TRIGGERFISH_REDIS_URL override it)."""
    from triggerfish.sources.urls import EXAMPLES, check_source_url

    if not isinstance(value, dict):
        raise fail(kind, f"must be a table such as url = '{EXAMPLES[kind]}', not {value!r}")
    for key in value:
        if key != "url":
            raise fail(kind, _unknown("key", key, {"url"}))
    if "url" in value:
        try:
            check_source_url(value["url"], kind=kind, where="url")
        except ValueError as exc:
            raise fail(kind, str(exc)) from None
    return dict(value)


def _buckets(value: object, fail: Any) -> dict[str, dict[str, Any]]:
    from triggerfish.objects.model import InvalidObjectNameError, check_bucket_name

    buckets: dict[str, dict[str, Any]] = {}
    for name, body in _tables(value, "buckets", fail).items():
        try:
            check_bucket_name(name)
        except InvalidObjectNameError as exc:
            raise fail(f"buckets.{_quote(name)}", str(exc)) from None
        for key in body:
            if key != "notifications":
                raise fail(f"buckets.{_quote(name)}", _unknown("key", key, {"notifications"}))
        buckets[name] = {}
        if "notifications" in body:
            from triggerfish.objects.bucket_notifications import configuration_from_settings

            try:
                buckets[name]["notifications"] = configuration_from_settings(body["notifications"])
            except ValueError as exc:
                raise fail(f"buckets.{_quote(name)}", str(exc)) from None
    return buckets


def _amqp(value: object, fail: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise fail("amqp", f"must be a table such as url = 'amqp://guest:guest@127.0.0.1:5672/', not {value!r}")
    for key, setting in value.items():
        if key != "url":
            raise fail("amqp", _unknown("key", key, {"url"}))
        if not isinstance(setting, str) or not setting:
            raise fail("amqp", f"url must be a non-empty string, not {setting!r}")
    if "url" in value:
        from triggerfish.sources.amqp_config import parse_amqp_url

        try:
            parse_amqp_url(value["url"], where="url")
        except ValueError as exc:
            raise fail("amqp", str(exc)) from None
    return dict(value)


def _mqtt(value: object, fail: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise fail("mqtt", f"must be a table such as url = 'mqtt://127.0.0.1:1883', not {value!r}")
    for key, setting in value.items():
        if key not in MQTT_KEYS:
            raise fail("mqtt", _unknown("key", key, MQTT_KEYS))
        if not isinstance(setting, str) or not setting:
            raise fail("mqtt", f"{key} must be a non-empty string, not {setting!r}")
    if "url" in value:
        from triggerfish.sources.mqtt_config import parse_broker_url

        try:
            parse_broker_url(value["url"], where="url")
        except ValueError as exc:
            raise fail("mqtt", str(exc)) from None
    if "client_id" in value and not all(c.isalnum() or c in "-_." for c in value["client_id"]):
        raise fail("mqtt", f"client_id may hold letters, digits, '-', '_' and '.' only, not {value['client_id']!r}")
    return dict(value)


def _tables(value: object, table: str, fail: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise fail(table, f"must be a table of tables, not {value!r}")
    for name, body in value.items():
        if not isinstance(body, dict):
            raise fail(f"{table}.{name}", f"must be a table, not {body!r}")
    return value


def _functions(value: object, table: str, fail: Any) -> dict[str, dict[str, Any]]:
    functions: dict[str, dict[str, Any]] = {}
    for name, body in _tables(value, table, fail).items():
        checked: dict[str, Any] = {}
        for key, setting in body.items():
            try:
                checked[key] = check_setting(key, setting)
            except ValueError as exc:
                raise fail(f"{table}.{_quote(name)}", f"{key}: {exc}") from None
        functions[name] = checked
    return functions


def _resources(
    value: object, table: str, fail: Any, keys: Mapping[str, tuple[type, ...]] = RESOURCE_KEYS
) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = {}
    for name, body in _tables(value, table, fail).items():
        here = f"{table}.{_quote(name)}"
        try:
            check_resource_name(_KINDS[table.rsplit(".", 1)[-1]], name)
        except ValueError as exc:
            raise fail(here, str(exc)) from None
        for key, setting in body.items():
            if key not in keys:
                raise fail(here, _unknown("key", key, keys))
            types = keys[key]
            if (isinstance(setting, bool) and bool not in types) or not isinstance(setting, types):
                raise fail(here, f"{key} must be {_TYPE_NAMES[types]}, not {setting!r}")
            if isinstance(setting, int | float) and not isinstance(setting, bool) and setting <= 0:
                raise fail(here, f"{key} must be more than 0, not {setting!r}")
        resources[name] = dict(body)
    return resources


def _table_schemas(value: object, fail: Any) -> dict[str, dict[str, Any]]:
    from triggerfish.tables.schema import TableSchema

    found = _tables(value, "tables", fail)
    for name, body in found.items():
        try:
            TableSchema.from_config(name, body)
        except (DeclarationError, ValueError) as exc:
            raise fail(f"tables.{_quote(name)}", str(exc).split("]: ", 1)[-1]) from None
    return {name: dict(body) for name, body in found.items()}


def _merge_tables(
    base: Mapping[str, Mapping[str, Any]], stage: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    merged = {name: dict(body) for name, body in base.items()}
    for name, body in stage.items():
        merged.setdefault(name, {}).update(body)
    return merged


def _checked_overrides(overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    checked: dict[str, dict[str, Any]] = {}
    for name, settings in overrides.items():
        checked[name] = {}
        for key, value in settings.items():
            try:
                checked[name][key] = check_setting(key, value)
            except ValueError as exc:
                raise DeclarationError(f"the command-line override for {name}: {key}: {exc}") from None
    return checked


def _quote(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'
