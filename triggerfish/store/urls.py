"""Opening stores by URL: the scheme registry, the options every backend shares, and stores built of parts.

Each scheme names a module and its opener as text (`"module:function"`), so a
backend is imported only when a URL uses it, and a missing driver is reported
with the extra that installs it. A store may take each part (log, queues,
key-value) from its own URL; each distinct URL is opened once.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

from triggerfish.errors import UnknownStoreURLError
from triggerfish.store.base import DEFAULT_MAX_RECORD_BYTES, EventLog, KeyValue, Queues, Store

#: scheme -> "module:opener"; an opener is `async (url, options, *, max_record_bytes, migrate) -> Store`.
BACKENDS: dict[str, str] = {
    "memory": "triggerfish.store.memory:open_from_url",
    "sqlite": "triggerfish.store.sqlite:open_from_url",
    "postgresql": "triggerfish.store.postgres:open_from_url",
    "postgres": "triggerfish.store.postgres:open_from_url",
}

#: scheme -> the pip extra that installs its driver.
EXTRAS: dict[str, str] = {"postgresql": "postgres", "postgres": "postgres"}

Opener = Callable[..., Awaitable[Store]]


def options_of(url: str) -> dict[str, str]:
    """The URL's query options, the last value of each."""
    return {key: values[-1] for key, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def pop_int(url: str, options: dict[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    """Take the whole-number option `name` out of `options`; raises UnknownStoreURLError naming it."""
    text = options.pop(name, None)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise UnknownStoreURLError(f"store URL {url!r}: {name} must be a whole number") from exc
    if value < minimum:
        raise UnknownStoreURLError(f"store URL {url!r}: {name} must be at least {minimum}, not {value}")
    return value


def pop_float(url: str, options: dict[str, str], name: str, default: float, *, low: float, high: float) -> float:
    """Take the number-of-seconds option `name` out of `options`; raises UnknownStoreURLError naming it."""
    text = options.pop(name, None)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError as exc:
        raise UnknownStoreURLError(f"store URL {url!r}: {name} must be a number of seconds") from exc
    if not low <= value <= high:
        raise UnknownStoreURLError(f"store URL {url!r}: {name} must be from {low:g} to {high:g}, not {text}")
    return value


def refuse_unknown(url: str, options: dict[str, str]) -> None:
    """Refuse options no one took: a typo must not be silently ignored."""
    if options:
        raise UnknownStoreURLError(f"store URL {url!r}: unknown option(s) {', '.join(sorted(options))}")


def opener(url: str) -> Opener:
    """The opener of the URL's scheme, its module imported now; raises UnknownStoreURLError."""
    if not isinstance(url, str):
        raise UnknownStoreURLError(f"a store URL must be a string like 'sqlite:///s.db', not {type(url).__name__}")
    scheme = urlsplit(url).scheme
    target = BACKENDS.get(scheme)
    if target is None:
        known = ", ".join(sorted({s + "://" for s in BACKENDS}))
        raise UnknownStoreURLError(f"unknown store URL {url!r}: the schemes known are {known}")
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "triggerfish":
            raise
        extra = EXTRAS.get(scheme, scheme)
        raise UnknownStoreURLError(
            f"store URL {url!r} needs the {exc.name} package, which is not installed:"
            f" pip install 'triggerfish[{extra}]'"
        ) from exc
    found: Opener = getattr(module, function)
    return found


async def open_url(url: str, *, migrate: bool = True) -> Store:
    """Open the one store `url` names (see `triggerfish.store.open_store`)."""
    open_backend = opener(url)
    options = options_of(url)
    max_record_bytes = pop_int(url, options, "max_record_bytes", DEFAULT_MAX_RECORD_BYTES)
    return await open_backend(url, options, max_record_bytes=max_record_bytes, migrate=migrate)


class CompositeStore(Store):
    """A store whose parts come from different engines: `atomic` runs in order, closing closes each engine once."""

    atomic_writes = False

    def __init__(self, url: str, *, log: EventLog, queues: Queues, kv: KeyValue, engines: dict[str, Store]) -> None:
        self.engines = engines  # by URL
        super().__init__(url, log=log, queues=queues, kv=kv, on_close=self._close_engines)

    async def _close_engines(self) -> None:
        errors: list[BaseException] = []
        for engine in self.engines.values():
            try:
                await engine.close()
            except Exception as exc:  # close the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]

    def __repr__(self) -> str:
        return f"<CompositeStore of {', '.join(self.engines)}>"


async def open_parts(url: str, *, log: str | None, queues: str | None, kv: str | None, migrate: bool) -> Store:
    """Open `url`, and each part's own URL where given; a URL named twice is opened once."""
    wanted = {"log": log or url, "queues": queues or url, "kv": kv or url}
    for part_url in wanted.values():
        opener(part_url)  # refuse every bad URL before opening anything
    opened: dict[str, Store] = {}
    try:
        for part_url in dict.fromkeys(wanted.values()):
            opened[part_url] = await open_url(part_url, migrate=migrate)
    except BaseException:
        for store in opened.values():
            await store.close()
        raise
    if len(opened) == 1:
        return next(iter(opened.values()))
    return CompositeStore(
        url,
        log=opened[wanted["log"]].log,
        queues=opened[wanted["queues"]].queues,
        kv=opened[wanted["kv"]].kv,
        engines=opened,
    )
