"""Log lines made from invocation records, as Lambda writes them to CloudWatch (pure: no I/O).

Every attempt of an invocation becomes, in order:

    START RequestId: 4f1c... Version: 3
    <the captured output, a line each: logging's lines carry their level and time; prints are INFO>
    ValueError: order o-1 was never paid        (ERROR, only for a failed attempt, then its traceback)
    END RequestId: 4f1c...
    REPORT RequestId: 4f1c...<TAB>Duration: 1.23 ms<TAB>Billed Duration: 2 ms<TAB>Memory Size: 128 MB

The REPORT line's fields are separated by tabs, as Lambda's are, so tools that
read Lambda's REPORT lines read these; `Init Duration: 180.41 ms` is added on a
cold start and the status when the attempt did not succeed, as Lambda says it
(`Status: timeout`; `Status: error` and `Error Type: Runtime.OutOfMemory` for a
worker killed for memory), `Status: failed` for a handler's error. An attempt
that never ran (throttled, or expired in its queue) is one ERROR line.

Levels and times of output lines come from the worker's logging format
(`2026-12-01 10:00:00,123 INFO name message`, local time; see
triggerfish/runtime/worker.py): a line in that format keeps its level and time,
and a traceback logged with it (`logger.exception`) keeps its level on every
line; any other line is INFO at the time of the line before it. Times are kept
within the attempt's start and end, in order.
"""

from __future__ import annotations

import datetime
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from triggerfish.errors import InvalidInputError
from triggerfish.names import OUT_OF_MEMORY_ERROR

if TYPE_CHECKING:
    # Only for annotations: the CLI imports this module to check its options, and must stay quick.
    from triggerfish.runtime.records import InvocationRecord

#: The levels a line can have, lowest first, with logging's numbers.
LEVELS: dict[str, int] = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
#: What a line is: the platform's START, END and REPORT lines, captured output, or the error of a failed attempt.
KINDS = ("start", "output", "error", "end", "report")

_LOGGED = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(?P<ms>\d{3}) (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)"
    r" (?P<logger>\S+) (?P<message>.*)"
)
_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?)(?P<unit>[smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NEVER_RAN = frozenset({"throttled", "expired"})
_FUNCTION_LOGGER = "triggerfish.function."


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line. `time` is epoch seconds; `report` holds the REPORT line's figures, `logger` a logged line's logger."""

    time: float
    function: str
    version: str | None
    request_id: str
    attempt: int
    level: str
    kind: str
    message: str
    logger: str | None = None
    report: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The line as the API sends it: `time` in RFC 3339 (UTC, milliseconds), `timestamp` in epoch seconds."""
        document: dict[str, Any] = {
            "time": rfc3339(self.time),
            "timestamp": self.time,
            "function": self.function,
            "version": self.version,
            "request_id": self.request_id,
            "attempt": self.attempt,
            "level": self.level,
            "kind": self.kind,
            "message": self.message,
        }
        if self.logger is not None:
            document["logger"] = self.logger
        if self.report is not None:
            document["report"] = self.report
        return document


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which lines a reader wants: of one function, one invocation, at or above a level, at or after a time."""

    function: str | None = None
    request_id: str | None = None
    level: str = "DEBUG"
    since: float | None = None

    def wants_record(self, record: InvocationRecord) -> bool:
        if self.function is not None and record.function != self.function:
            return False
        if self.request_id is not None and record.request_id != self.request_id:
            return False
        return self.since is None or record.ended_at >= self.since

    def wants(self, line: LogLine) -> bool:
        return LEVELS[line.level] >= LEVELS[self.level] and (self.since is None or line.time >= self.since)

    def lines(self, record: InvocationRecord) -> list[LogLine]:
        """The record's lines this filter wants."""
        if not self.wants_record(record):
            return []
        return [line for line in lines_of(record) if self.wants(line)]


def lines_of(record: InvocationRecord) -> list[LogLine]:
    """Every line of one attempt, in order (see the module docstring)."""

    def line(at: float, level: str, kind: str, message: str, **extra: Any) -> LogLine:
        return LogLine(
            at, record.function, record.version, record.request_id, record.attempt, level, kind, message, **extra
        )

    request_id = record.request_id
    if record.status in _NEVER_RAN:
        return [line(record.ended_at, "ERROR", "error", _error_summary(record.error, record.status))]
    start = f"START RequestId: {request_id} Version: {record.version or '$LATEST'}"
    if record.attempt > 1:
        start += f" Attempt: {record.attempt}"
    lines = [line(record.started_at, "INFO", "start", start)]
    last = record.started_at
    for at, level, logger, message in _output_lines(record):
        last = at
        lines.append(line(at, level, "output", message, logger=logger))
    if record.output_truncated:
        lines.append(
            line(last, "WARNING", "output", "[the output was cut short here: the platform keeps the first part]")
        )
    if record.error is not None:
        lines.append(line(record.ended_at, "ERROR", "error", _error_summary(record.error, record.status)))
        lines.extend(line(record.ended_at, "ERROR", "error", text) for text in _stack_lines(record.error))
    lines.append(line(record.ended_at, "INFO", "end", f"END RequestId: {request_id}"))
    lines.append(line(record.ended_at, "INFO", "report", _report_text(record), report=_report(record)))
    return lines


def _output_lines(record: InvocationRecord) -> Iterator[tuple[float, str, str | None, str]]:
    """(time, level, logger, message) for each line of the captured output."""
    begin, end = record.started_at, max(record.ended_at, record.started_at)
    at, level, logger = begin, "INFO", None
    in_traceback = False
    function_logger = _FUNCTION_LOGGER + record.function
    prefix = f"[{record.request_id}] "
    texts = record.output.split("\n")
    if texts[-1] == "":
        texts.pop()  # the newline ending the last line
    for raw in texts:
        # Only newlines end lines (not the other breaks str.splitlines knows); a CRLF's CR goes.
        text = raw.removesuffix("\r")
        logged = _LOGGED.fullmatch(text)
        if logged is not None:
            level, logger, in_traceback = logged["level"], logged["logger"], False
            at = min(max(_local_time(logged["time"], logged["ms"], at), at), end)
            message = logged["message"]
            # context.logger starts every message with the request id, which the line carries already.
            if logger == function_logger:
                message = message.removeprefix(prefix)
            yield at, level, logger, message
        elif logger is not None and (continued := _continuation(text, in_traceback)) is not None:
            # The rest of a logged record that spans lines (a traceback from logger.exception).
            in_traceback = continued
            yield at, level, logger, text
        else:
            level, logger, in_traceback = "INFO", None, False
            yield at, "INFO", None, text


def _continuation(text: str, in_traceback: bool) -> bool | None:
    """Whether `text` still belongs to the logged record before it: None if not, else whether a traceback goes on."""
    if _starts_traceback(text):
        return True
    if not text.strip() or text.startswith((" ", "\t")):
        return in_traceback
    # Inside a traceback, the exception's own line (`ValueError: ...`) is its last.
    return False if in_traceback else None


def _starts_traceback(text: str) -> bool:
    return text == "Traceback (most recent call last):" or text.startswith(
        ("During handling of the above exception", "The above exception was the direct cause")
    )


def _local_time(stamp: str, ms: str, fallback: float) -> float:
    # The worker formats in local time with the server's time zone (TZ is passed to workers).
    try:
        parsed = time.strptime(stamp, "%Y-%m-%d %H:%M:%S")
        return time.mktime(parsed) + int(ms) / 1000
    except (ValueError, OverflowError):
        return fallback


def _error_summary(error: dict[str, Any] | None, status: str) -> str:
    if not error:
        return f"the invocation {status.replace('_', ' ')}"
    kind = error.get("errorType") or "Error"
    message = error.get("errorMessage")
    return f"{kind}: {message}" if message else str(kind)


def _stack_lines(error: dict[str, Any]) -> list[str]:
    stack = error.get("stackTrace")
    if not isinstance(stack, list) or not stack:
        return []
    lines = ["Traceback (most recent call last):"]
    for entry in stack:
        lines.extend(str(entry).rstrip("\n").split("\n"))
    return lines


def _report(record: InvocationRecord) -> dict[str, Any]:
    return {
        "duration_ms": record.duration_ms,
        "billed_duration_ms": record.billed_duration_ms,
        "memory_mb": record.memory_mb,
        "max_memory_used_mb": record.max_memory_used_mb,
        "gb_seconds": record.gb_seconds,
        "cold_start": record.cold_start,
        "init_duration_ms": record.init_duration_ms,
        "status": record.status,
        "trigger": record.trigger,
    }


def _report_text(record: InvocationRecord) -> str:
    fields = [
        f"REPORT RequestId: {record.request_id}",
        f"Duration: {record.duration_ms:.2f} ms",
        f"Billed Duration: {record.billed_duration_ms} ms",
        f"Memory Size: {record.memory_mb} MB",
    ]
    if record.max_memory_used_mb is not None:
        fields.append(f"Max Memory Used: {record.max_memory_used_mb} MB")
    if record.cold_start and record.init_duration_ms is not None:
        fields.append(f"Init Duration: {record.init_duration_ms:.2f} ms")
    fields.extend(
        _REPORT_STATUS.get(record.status, (f"Status: {record.status}",)) if record.status != "succeeded" else ()
    )
    return "\t".join(fields)


# As Lambda's REPORT line says them: a runtime killed for memory is `error` with its error type, a timeout
# `timeout`; the other failures keep Triggerfish's own status names.
_REPORT_STATUS: dict[str, tuple[str, ...]] = {
    "out_of_memory": ("Status: error", f"Error Type: {OUT_OF_MEMORY_ERROR}"),
    "timed_out": ("Status: timeout",),
}


# --- inputs ------------------------------------------------------------------------------------


def level_name(value: str, *, where: str = "level") -> str:
    """A level's canonical name (`warn` is WARNING); InvalidInputError naming the levels otherwise."""
    name = value.strip().upper() if isinstance(value, str) else ""
    name = _ALIASES.get(name, name)
    if name not in LEVELS:
        raise InvalidInputError(f"{where} must be one of {', '.join(LEVELS)} (any case), not {value!r}")
    return name


def since_time(value: str, *, now: float, where: str = "since") -> float:
    """Epoch seconds from `10m`, `2h`, `30s`, `1d` (that long before `now`) or an RFC 3339 time with a zone."""
    text = value.strip() if isinstance(value, str) else ""
    relative = _DURATION.fullmatch(text)
    if relative is not None:
        return now - float(relative["amount"]) * _UNIT_SECONDS[relative["unit"]]
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("z", "Z")) if text else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or not math.isfinite(parsed.timestamp()):
        raise InvalidInputError(
            f"{where} must be a duration such as 30s, 10m, 2h or 1d, or an RFC 3339 time with a zone such as"
            f" 2026-12-01T10:00:00Z, not {value!r}"
        )
    return parsed.timestamp()


def rfc3339(at: float) -> str:
    """`2026-12-01T10:00:00.123Z`."""
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
