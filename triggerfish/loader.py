"""Loading a user's app, loudly: every way it can fail says what happened and what to do.

    app = load_app("app.py")            # the one App in the file
    app = load_app("app.py:app")        # the App named `app`
    app = load_app("shop.api")          # a module on sys.path (the current directory included)
    app = load_app("shop.api:app")

An import that raises keeps its traceback in `AppLoadError.details`; a
module with no App, or with several and no `:name`, says what it found.

Also here: the JSON description of a FunctionSpec, which the process that
imported the app (the zygote) sends to the parent so the parent knows the
functions without importing user code itself.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import orjson

from triggerfish.app import App
from triggerfish.errors import AppLoadError, DeclarationError, InvocationError
from triggerfish.http_auth import auth_from_data, auth_to_data, describe_auth
from triggerfish.model import (
    DEFAULT_EPHEMERAL_STORAGE_MB,
    AmqpTrigger,
    ChangeTrigger,
    EventTrigger,
    FunctionSettings,
    FunctionSpec,
    HttpTrigger,
    MqttTrigger,
    NatsTrigger,
    ObjectTrigger,
    PartitionedStreamTrigger,
    PgChangeTrigger,
    ProjectionTrigger,
    QueueTrigger,
    RedisStreamTrigger,
    ScheduleTrigger,
    StreamSettings,
    TopicTrigger,
    Trigger,
    parse_destination,
)

# Module names this loader imported from files: only these may be replaced by another file of that name.
_LOADED_BY_US: set[str] = set()


def load_app(target: str | Path) -> App:
    """Import the app named by `target` ("path/to/app.py[:attr]" or "pkg.module[:attr]") and return it.

    Raises AppLoadError: the file or module is missing, importing it raised
    (details: the traceback), a declaration in it is wrong, it holds no App
    or several without `:attr`, or the App declares no functions.
    """
    text = str(target)
    location, attr = _split(text)
    module = _import(location, text)
    app = _find_app(module, attr, text)
    try:
        functions = app.functions
    except DeclarationError as exc:
        raise AppLoadError(f"{text}: {exc}", details=traceback.format_exc()) from exc
    if not functions:
        raise AppLoadError(
            f"{text}: the app {app.name!r} declares no functions; decorate a handler, e.g. "
            f"@{attr or 'app'}.function() above `def handler(event, context): ...`"
        )
    return app


def _split(target: str) -> tuple[str, str | None]:
    location, colon, attr = target.rpartition(":")
    # "C:\\app.py" or a path without ":attr": the colon is not ours.
    if not colon or not attr or not all(part.isidentifier() for part in attr.split(".")):
        return target, None
    return location, attr


def _import(location: str, target: str) -> ModuleType:
    looks_like_file = location.endswith(".py") or os.sep in location or "/" in location
    if looks_like_file:
        path = Path(location).resolve()
        if not path.is_file():
            raise AppLoadError(f"{target}: no such file {path}; give the path of the app's .py file")
        return _run_import(lambda: _import_file(path), target, None)
    if not all(part.isidentifier() for part in location.split(".")):
        raise AppLoadError(f"{target}: not a module name or a .py path; write app.py, app.py:app or pkg.module:app")
    if "" not in sys.path and os.getcwd() not in sys.path:
        # As `python -m` does: the directory the command runs in holds the user's modules.
        sys.path.insert(0, os.getcwd())
    return _run_import(lambda: importlib.import_module(location), target, location)


def _import_file(path: Path) -> ModuleType:
    """Import `path` as a top-level module named after the file, with its directory on sys.path.

    Importing under its plain name (not a made-up one) lets the app's own
    modules import it and lets workers find handlers by `module:qualname`.
    """
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = path.stem
    if not name.isidentifier():
        raise AppLoadError(f"{path}: {name!r} is not a valid module name; rename the file (letters, digits, _)")
    loaded = sys.modules.get(name)
    if loaded is not None:
        if getattr(loaded, "__file__", None) and Path(loaded.__file__ or "").resolve() == path:
            return loaded
        if name not in _LOADED_BY_US:
            # Replacing it would break every importer of the real module (think of an app file named json.py).
            where = getattr(loaded, "__file__", None) or "built in"
            raise AppLoadError(
                f"{path}: a module named {name!r} is already imported (from {where}); rename the app's file"
            )
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _LOADED_BY_US.add(name)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _run_import(load: Any, target: str, module_name: str | None) -> ModuleType:
    try:
        module: ModuleType = load()
        return module
    except AppLoadError:
        raise
    except DeclarationError as exc:
        # The user's mistake, said in one line at the user's line: a traceback through the platform's own
        # frames (the decorator, its checks) would only bury it.
        raise AppLoadError(f"{_declared_at(exc) or target}: {exc}") from exc
    except ModuleNotFoundError as exc:
        details = traceback.format_exc()
        missing = exc.name or ""
        if module_name is not None and (module_name == missing or module_name.startswith(missing + ".")):
            raise AppLoadError(
                f"{target}: no module named {missing!r} on the path (searched {', '.join(sys.path[:3])}, ...); "
                "run from the project directory or give the file's path",
                details=details,
            ) from exc
        _failed(exc, target, details)
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        # SystemExit and KeyboardInterrupt too: an app calling sys.exit() at import is a broken app, not a
        # reason for the platform to exit without saying why.
        _failed(exc, target, traceback.format_exc())


def _declared_at(exc: BaseException) -> str | None:
    """`path:line` of the innermost frame of the user's code that led to `exc` (the path relative to the
    current directory when under it); None when every frame is the platform's or Python's own."""
    package = Path(__file__).resolve().parent
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith("<") or Path(frame.filename).resolve().is_relative_to(package):
            continue
        found = frame
    if found is None:
        return None
    path = Path(found.filename).resolve()
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    return f"{shown}:{found.lineno}"


def _failed(exc: BaseException, target: str, details: str) -> NoReturn:
    raise AppLoadError(
        f"{target}: importing the app raised {type(exc).__name__}: {exc}; the traceback is in the details",
        details=details,
    ) from exc


def _find_app(module: ModuleType, attr: str | None, target: str) -> App:
    apps = {name: value for name, value in vars(module).items() if isinstance(value, App)}
    if attr is not None:
        value: Any = module
        for part in attr.split("."):
            if not hasattr(value, part):
                found = ", ".join(apps) or "no App at all"
                raise AppLoadError(f"{target}: {module.__name__} has no attribute {attr!r} (Apps in it: {found})")
            value = getattr(value, part)
        if not isinstance(value, App):
            raise AppLoadError(f"{target}: {attr} is a {type(value).__name__}, not a triggerfish.App")
        return value
    distinct = {id(app): name for name, app in apps.items()}
    if len(distinct) == 1:
        return next(iter(apps.values()))
    if not distinct:
        names = [name for name in vars(module) if not name.startswith("_")]
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "nothing"
        raise AppLoadError(
            f"{target}: no triggerfish.App in module {module.__name__} (it defines: {shown}); "
            'create one with app = triggerfish.App("name") or point at it with :attr'
        )
    listed = ", ".join(f"{name} ({apps[name].name!r})" for name in distinct.values())
    raise AppLoadError(f"{target}: several Apps in module {module.__name__}: {listed}; choose one with {target}:NAME")


# --- describing functions --------------------------------------------------------------------


#: Change triggers are declared and checked, but nothing fires them yet: say so wherever they are listed.
NOT_LIVE = "(not live yet)"


def describe_trigger(trigger: Trigger) -> str:
    """One line a person can read: `http POST /orders/{id}`, `queue orders (batch 10, window 2s)`, ..."""
    if isinstance(trigger, HttpTrigger):
        auth = "" if trigger.auth is None else f" (auth: {describe_auth(trigger.auth)})"
        return f"http {trigger.method} {trigger.path}{auth}"
    if isinstance(trigger, EventTrigger):
        pattern = orjson.dumps(trigger.pattern).decode()
        return f"event {trigger.bus} {_clip(pattern, 60)}"
    if isinstance(trigger, QueueTrigger):
        batch = f" (batch {trigger.batch_size}, window {trigger.batch_window:g}s)" if trigger.batch_size > 1 else ""
        return f"queue {trigger.queue}{batch}"
    if isinstance(trigger, TopicTrigger):
        extra = f" filter {_clip(orjson.dumps(trigger.filter).decode(), 50)}" if trigger.filter else ""
        extra += " on the body" if trigger.filter and trigger.filter_scope == "body" else ""
        return f"topic {trigger.topic}{extra}"
    if isinstance(trigger, ScheduleTrigger):
        return f"schedule {trigger.expression}" + (f" [{trigger.tz}]" if trigger.tz else "")
    if isinstance(trigger, ObjectTrigger):
        keys = f" {trigger.prefix}*{trigger.suffix}" if trigger.prefix or trigger.suffix else ""
        return f"object {trigger.bucket} {','.join(trigger.events)}{keys}"
    if isinstance(trigger, AmqpTrigger):
        bound = f" bound to {trigger.exchange} by {trigger.routing_key}" if trigger.exchange else ""
        size = trigger.stream_settings.batch_size
        batch = f" (batch {size})" if size > 1 else ""
        return f"amqp {trigger.queue}{bound}{batch}{_source_extra(trigger)}"
    if isinstance(trigger, NatsTrigger):
        return f"nats {trigger.subject}{_stream_extra(trigger)}"
    if isinstance(trigger, RedisStreamTrigger):
        return f"redis stream {trigger.stream}{_stream_extra(trigger)}"
    if isinstance(trigger, PartitionedStreamTrigger):
        return f"stream {trigger.stream} by {trigger.partition_key}{_stream_extra(trigger)}"
    if isinstance(trigger, MqttTrigger):
        share = f" shared by {trigger.share}" if trigger.share else ""
        size = trigger.stream_settings.batch_size
        batch = f", batch {size}" if size > 1 else ""
        return f"mqtt {trigger.topic} (qos {trigger.qos}{batch}){share}{_source_extra(trigger)}"
    if isinstance(trigger, PgChangeTrigger):
        view = trigger.stream_view_type
        partitions = trigger.stream_settings.parallelization
        view += f", {partitions} partitions" if partitions > 1 else ""
        return f"change {trigger.table} in {trigger.source} {','.join(trigger.ops)} ({view})"
    if isinstance(trigger, ProjectionTrigger):
        per_stream = f", per stream, {trigger.max_concurrency} at once" if trigger.order == "stream" else ""
        into = f", into {', '.join(trigger.tables)}" if trigger.tables else ""
        return f"projection {trigger.category} (batch {trigger.batch_size}{per_stream}{into})"
    size = trigger.stream_settings.batch_size
    batch = f" (batch {size})" if size > 1 else ""
    return f"change {trigger.table} {','.join(trigger.ops)}{batch}"


def describe_functions(specs: Mapping[str, FunctionSpec] | Iterable[FunctionSpec]) -> str:
    """A plain-text table of functions, their settings and triggers, for the command line."""
    items = list(specs.values()) if isinstance(specs, Mapping) else list(specs)
    if not items:
        return "no functions"
    rows = [("FUNCTION", "MEMORY", "TIMEOUT", "CONCURRENCY", "TRIGGERS")]
    for spec in items:
        s = spec.settings
        triggers = [describe_trigger(t) for t in spec.triggers] or ["(invoke only)"]
        rows.append((spec.name, f"{s.memory_mb} MB", f"{s.timeout:g}s", str(s.concurrency), triggers[0]))
        rows.extend(("", "", "", "", more) for more in triggers[1:])
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
    return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- FunctionSpec as JSON --------------------------------------------------------------------


def spec_to_dict(spec: FunctionSpec) -> dict[str, Any]:
    """A JSON-able description of `spec` without its handler (see `spec_from_dict`).

    A route's `auth` is described as data (see triggerfish.http_auth).
    """
    s = spec.settings
    settings: dict[str, Any] = {
        "memory_mb": s.memory_mb,
        "timeout": s.timeout,
        "concurrency": s.concurrency,
        "min_warm": s.min_warm,
        "retries": s.retries,
        "max_event_age": s.max_event_age,
        "on_success": None if s.on_success is None else str(s.on_success),
        "on_failure": None if s.on_failure is None else str(s.on_failure),
        "dead_letter": None if s.dead_letter is None else str(s.dead_letter),
        "env": dict(s.env),
    }
    if s.secrets:
        # Only when declared: a function's description is its fingerprint, which must not move for those declaring none.
        settings["secrets"] = list(s.secrets)
    if s.ephemeral_storage != DEFAULT_EPHEMERAL_STORAGE_MB:  # likewise: only when set
        settings["ephemeral_storage"] = s.ephemeral_storage
    if s.keep_inputs is not None:  # likewise
        settings["keep_inputs"] = s.keep_inputs
    described: dict[str, Any] = {
        "name": spec.name,
        "ref": spec.ref,
        "settings": settings,
        "triggers": [_trigger_dict(t) for t in spec.triggers],
        "code": code_fingerprint(spec.handler),
    }
    if spec.workflow:
        # Only for workflows, as secrets: the description of every other function stays as it was.
        described["workflow"] = True
    if spec.durable:
        described["durable"] = True
    return described


def code_fingerprint(handler: Any) -> str:
    """A sha256 of the handler's own source, so a deploy can tell which functions' code changed.

    Its source text, not its bytecode: line numbers move with edits
    elsewhere in the file, and those are not changes to this function.
    Code without source (built in C, say) falls back to its bytecode.
    """
    target = inspect.unwrap(handler)
    try:
        text = inspect.getsource(target).encode("utf-8")
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        text = code.co_code if code is not None else repr(target).encode("utf-8")
    return hashlib.sha256(text).hexdigest()


def spec_from_dict(data: Mapping[str, Any]) -> FunctionSpec:
    """The FunctionSpec `spec_to_dict` described; its handler is a stub that raises InvocationError.

    Raises ValueError when `data` is not such a description.
    """
    try:
        raw = data["settings"]
        settings = FunctionSettings(
            memory_mb=int(raw["memory_mb"]),
            timeout=float(raw["timeout"]),
            concurrency=int(raw["concurrency"]),
            min_warm=int(raw["min_warm"]),
            retries=int(raw["retries"]),
            max_event_age=float(raw["max_event_age"]),
            on_success=_destination(raw.get("on_success")),
            on_failure=_destination(raw.get("on_failure")),
            dead_letter=_destination(raw.get("dead_letter")),
            env=dict(raw.get("env") or {}),
            secrets=tuple(str(name) for name in raw.get("secrets") or ()),
            ephemeral_storage=int(raw.get("ephemeral_storage", DEFAULT_EPHEMERAL_STORAGE_MB)),
            keep_inputs=raw.get("keep_inputs") if isinstance(raw.get("keep_inputs"), bool) else None,
        )
        triggers = tuple(_trigger_from(t) for t in data.get("triggers", ()))
        name, ref = str(data["name"]), str(data["ref"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a function description: {exc!r}") from None
    return FunctionSpec(
        name=name,
        handler=_stub(name, ref),
        ref=ref,
        settings=settings,
        triggers=triggers,
        workflow=data.get("workflow") is True,
        durable=data.get("durable") is True,
    )


def _trigger_dict(trigger: Trigger) -> dict[str, Any]:
    if isinstance(trigger, HttpTrigger):
        return {"kind": "http", "method": trigger.method, "path": trigger.path, "auth": auth_to_data(trigger.auth)}
    if isinstance(trigger, EventTrigger):
        return {"kind": "event", "pattern": dict(trigger.pattern), "bus": trigger.bus, "shape": trigger.shape}
    if isinstance(trigger, QueueTrigger):
        return {
            "kind": "queue",
            "queue": trigger.queue,
            "batch_size": trigger.batch_size,
            "batch_window": trigger.batch_window,
        }
    if isinstance(trigger, TopicTrigger):
        return {
            "kind": "topic",
            "topic": trigger.topic,
            "filter": None if trigger.filter is None else dict(trigger.filter),
            "filter_scope": trigger.filter_scope,
        }
    if isinstance(trigger, ScheduleTrigger):
        return {"kind": "schedule", "expression": trigger.expression, "tz": trigger.tz}
    if isinstance(trigger, ObjectTrigger):
        return {
            "kind": "object",
            "bucket": trigger.bucket,
            "events": list(trigger.events),
            "prefix": trigger.prefix,
            "suffix": trigger.suffix,
        }
    if isinstance(
        trigger,
        MqttTrigger
        | AmqpTrigger
        | NatsTrigger
        | RedisStreamTrigger
        | PartitionedStreamTrigger
        | ChangeTrigger
        | PgChangeTrigger,
    ):
        # Flat, the stream settings beside the source's own fields (as before StreamSettings held them).
        fields = type(trigger).__dataclass_fields__
        reading = trigger.stream_settings
        return {
            "kind": trigger.kind,
            **{name: getattr(trigger, name) for name in fields if name not in ("kind", "stream_settings")},
            **{name: getattr(reading, name) for name in _READING_FIELDS},
            "filters": [dict(pattern) for pattern in reading.filters],
        }
    if isinstance(trigger, ProjectionTrigger):
        return {
            "kind": "projection",
            "category": trigger.category,
            "batch_size": trigger.batch_size,
            "order": trigger.order,
            "max_concurrency": trigger.max_concurrency,
            "tables": list(trigger.tables),
        }
    raise ValueError(f"unknown trigger {trigger!r}")  # pragma: no cover


#: StreamSettings' fields: in a trigger's description they stand beside the source's own.
_READING_FIELDS = tuple(field.name for field in dataclass_fields(StreamSettings))
#: The triggers that hold StreamSettings, by kind.
_STREAM_KINDS: dict[str, Any] = {
    "mqtt": MqttTrigger,
    "amqp": AmqpTrigger,
    "nats": NatsTrigger,
    "redis": RedisStreamTrigger,
    "stream": PartitionedStreamTrigger,
    "change": ChangeTrigger,
    "pgchange": PgChangeTrigger,
}


def _source_extra(trigger: MqttTrigger | AmqpTrigger) -> str:
    """What an MQTT or AMQP trigger adds beyond its defaults: a window, a bus, a rule."""
    reading = trigger.stream_settings
    parts = [f"window {reading.window:g}s"] if reading.window else []
    parts += [f"to bus {reading.to_bus}"] if reading.to_bus else []
    parts += ["with an IoT rule"] if reading.rule else []
    return f" [{', '.join(parts)}]" if parts else ""


def _stream_extra(trigger: NatsTrigger | RedisStreamTrigger | PartitionedStreamTrigger) -> str:
    reading = trigger.stream_settings
    parts = [f"batch {reading.batch_size}"] if reading.batch_size > 1 else []
    parts += [f"window {reading.window:g}s"] if reading.window else []
    parts += [f"to bus {reading.to_bus}"] if reading.to_bus else []
    parts.append(f"from {reading.starting_position}")
    return f" ({', '.join(parts)})"


def _trigger_from(data: Mapping[str, Any]) -> Trigger:
    fields = {key: value for key, value in data.items() if key != "kind"}
    kind = data["kind"]
    if kind == "http":
        return HttpTrigger(**{**fields, "auth": auth_from_data(fields.get("auth"))})
    if kind == "event":
        return EventTrigger(**fields)
    if kind == "queue":
        return QueueTrigger(**fields)
    if kind == "topic":
        return TopicTrigger(**fields)
    if kind == "schedule":
        return ScheduleTrigger(**fields)
    if kind == "object":
        return ObjectTrigger(**{**fields, "events": tuple(fields["events"])})
    if kind in _STREAM_KINDS:
        own = {key: value for key, value in fields.items() if key not in _READING_FIELDS}
        if "ops" in own:
            own["ops"] = tuple(own["ops"])
        reading = {key: value for key, value in fields.items() if key in _READING_FIELDS}
        reading["filters"] = tuple(reading.get("filters", ()))
        defaults = _STREAM_KINDS[kind].__dataclass_fields__["stream_settings"].default
        made: Trigger = _STREAM_KINDS[kind](**own, stream_settings=replace(defaults, **reading))
        return made
    if kind == "projection":
        return ProjectionTrigger(**{**fields, "tables": tuple(fields.get("tables", ()))})
    raise ValueError(f"unknown trigger kind {kind!r}")


def _destination(value: Any) -> Any:
    return None if value is None else parse_destination(value)


def _stub(name: str, ref: str) -> Any:
    def restored_handler(event: Any, context: Any) -> Any:
        raise InvocationError(
            f"function {name!r} was restored from its description; its handler {ref} runs in the app's workers"
        )

    return restored_handler
