"""Warnings that would flood the log, said once per interval with a count.

    limiter = LogLimiter(logging.getLogger("triggerfish.gateway"), interval=10.0)
    limiter.warning("over-cap", "refused a connection: %d open, the limit is %d", 1024, 1024)

The first warning of a kind is logged at once; the same kind again within
`interval` seconds is only counted, and the count is logged when the interval
is over (`... (and 311 more like it in the last 10 s)`). A client that opens
thousands of connections a second costs one line per interval, not thousands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Seconds between two lines of the same kind.
DEFAULT_INTERVAL = 10.0


@dataclass(slots=True)
class _Kind:
    logged_at: float
    suppressed: int = 0
    last_message: str = ""
    level: int = logging.WARNING
    flush: asyncio.TimerHandle | None = None


class LogLimiter:
    """One line per kind per `interval` seconds on `log`, with a count of what was held back."""

    def __init__(
        self, log: logging.Logger, *, interval: float = DEFAULT_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self._kinds: dict[str, _Kind] = {}

    def warning(self, kind: str, message: str, *args: Any) -> None:
        self.emit(logging.WARNING, kind, message, *args)

    def emit(self, level: int, kind: str, message: str, *args: Any) -> bool:
        """Log `message % args` now, or count it when a line of `kind` was logged within the interval.

        True when the line was logged now.
        """
        if not self.log.isEnabledFor(level):
            return False
        now = self.clock()
        known = self._kinds.get(kind)
        if known is None or now - known.logged_at >= self.interval:
            if known is not None and known.suppressed:
                self._flush(kind)
            self._kinds[kind] = _Kind(logged_at=now, level=level)
            self.log.log(level, message, *args)
            return True
        known.suppressed += 1
        known.last_message = message % args if args else message
        known.level = level
        if known.flush is None:
            with contextlib.suppress(RuntimeError):  # no running loop: the next line of this kind says it
                loop = asyncio.get_running_loop()
                known.flush = loop.call_later(max(0.0, known.logged_at + self.interval - now), self._flush, kind)
        return False

    def close(self) -> None:
        """Log what is still held back and cancel the timers."""
        for kind in list(self._kinds):
            self._flush(kind)

    def _flush(self, kind: str) -> None:
        known = self._kinds.get(kind)
        if known is None:
            return
        if known.flush is not None:
            known.flush.cancel()
            known.flush = None
        if known.suppressed:
            count, known.suppressed = known.suppressed, 0
            self.log.log(
                known.level,
                "%s (and %d more like it in the last %g s)",
                known.last_message,
                count - 1,
                self.interval,
            )
            known.logged_at = self.clock()


class LimitedLogger:
    """A stand-in for uvicorn's `uvicorn.error` logger whose warnings and errors go through a LogLimiter.

    uvicorn logs a line for every malformed request and every failed
    application call; a client sending garbage in a loop would otherwise fill
    the disk. Kinds are the message templates, so different problems still
    show up apart.
    """

    def __init__(self, log: logging.Logger, limiter: LogLimiter) -> None:
        self._log = log
        self._limiter = limiter

    @property
    def level(self) -> int:
        return self._log.level

    def isEnabledFor(self, level: int) -> bool:
        return self._log.isEnabledFor(level)

    def log(self, level: int, message: str, *args: Any, **kwargs: Any) -> None:
        if level >= logging.WARNING:
            self._limited(level, message, args, kwargs)
        else:
            self._log.log(level, message, *args, **kwargs)

    def debug(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._log.debug(message, *args, **kwargs)

    def info(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._log.info(message, *args, **kwargs)

    def warning(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._limited(logging.WARNING, message, args, kwargs)

    def error(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._limited(logging.ERROR, message, args, kwargs)

    def exception(self, message: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self._limited(logging.ERROR, message, args, kwargs)

    def _limited(self, level: int, message: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # The first of its kind keeps its traceback; the repeats are only counted.
        if self._limiter.emit(level, f"uvicorn:{message}", "%s", _text(message, args)) and kwargs.get("exc_info"):
            self._log.log(level, "(the traceback of the line above)", exc_info=kwargs["exc_info"])


def _text(message: str, args: tuple[Any, ...]) -> str:
    try:
        return message % args if args else message
    except (TypeError, ValueError):
        return f"{message} {args!r}"
