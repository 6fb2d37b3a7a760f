"""The log line model: invocation records as START, output, error, END and REPORT lines (pure: hand-made records)."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import pytest

from triggerfish.runtime.records import InvocationRecord
from triggerfish.server.log_lines import LogFilter, level_name, lines_of, rfc3339, since_time


def record(**fields: Any) -> InvocationRecord:
    base: dict[str, Any] = {
        "request_id": "req-1",
        "function": "ship",
        "version": "3",
        "trigger": "sync",
        "attempt": 1,
        "status": "succeeded",
        "started_at": 1_800_000_000.0,
        "ended_at": 1_800_000_000.5,
        "duration_ms": 500.0,
        "billed_duration_ms": 500,
        "memory_mb": 128,
        "gb_seconds": 0.0625,
    }
    return InvocationRecord(**{**base, **fields})


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server (and so its workers) in a time zone away from UTC, so a local time read as UTC would show."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def local(at: float) -> str:
    """`at` as the worker's logging writes it: local time, milliseconds after a comma."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f",{int(at * 1000) % 1000:03d}"


@pytest.mark.usefixtures("berlin")
def test_logged_lines_keep_their_time_and_level_and_prints_follow_the_line_before() -> None:
    assert time.timezone != 0
    start = 1_800_000_000.0
    output = "\n".join(
        [
            "before any log",
            f"{local(start + 0.1)} INFO triggerfish.function.ship [req-1] shipping",
            "printed after",
            f"{local(start + 0.2)} ERROR shop.orders failed",
            "Traceback (most recent call last):",
            '  File "app.py", line 3, in ship',
            "    1/0",
            "ZeroDivisionError: division by zero",
            "a print again",
            f"{local(start + 9)} CRITICAL shop.orders after the end",
        ]
    )
    lines = [line for line in lines_of(record(output=output)) if line.kind == "output"]
    assert [(line.level, line.message) for line in lines] == [
        ("INFO", "before any log"),
        ("INFO", "shipping"),
        ("INFO", "printed after"),
        ("ERROR", "failed"),
        ("ERROR", "Traceback (most recent call last):"),
        ("ERROR", '  File "app.py", line 3, in ship'),
        ("ERROR", "    1/0"),
        ("ERROR", "ZeroDivisionError: division by zero"),
        ("INFO", "a print again"),
        ("CRITICAL", "after the end"),
    ]
    assert [round(line.time - start, 3) for line in lines] == [0, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.5]
    assert [line.logger for line in lines[:2]] == [None, "triggerfish.function.ship"]


def test_a_retry_says_its_attempt_and_cut_output_says_so() -> None:
    lines = lines_of(record(attempt=2, output="x" * 10, output_truncated=True, cold_start=True))
    assert lines[0].message == "START RequestId: req-1 Version: 3 Attempt: 2"
    assert (lines[2].level, lines[2].kind) == ("WARNING", "output")
    assert "cut short" in lines[2].message
    # A cold start without a measured init duration says nothing it does not know.
    assert lines[-1].message == (
        "REPORT RequestId: req-1\tDuration: 500.00 ms\tBilled Duration: 500 ms\tMemory Size: 128 MB"
    )


def test_an_attempt_that_never_ran_is_one_error_line() -> None:
    error = {"errorType": "TooManyRequestsException", "errorMessage": "ship is at its concurrency limit"}
    (line,) = lines_of(record(status="throttled", error=error, duration_ms=0.0, billed_duration_ms=0))
    assert (line.level, line.kind) == ("ERROR", "error")
    assert line.message == "TooManyRequestsException: ship is at its concurrency limit"


def test_a_timeout_reports_its_status() -> None:
    error = {"errorType": "Runtime.Timeout", "errorMessage": "Task timed out after 3.00 seconds"}
    lines = lines_of(record(status="timed_out", error=error))
    assert [line.message for line in lines if line.kind == "error"] == [
        "Runtime.Timeout: Task timed out after 3.00 seconds"
    ]
    assert lines[-1].message.endswith("\tStatus: timeout")  # as Lambda's REPORT line says it


def test_running_out_of_memory_is_reported_as_lambda_reports_it() -> None:
    error = {"errorType": "Runtime.OutOfMemory", "errorMessage": "Runtime exited with error: signal: killed"}
    report = lines_of(record(status="out_of_memory", error=error, max_memory_used_mb=128))[-1].message
    fields = report.split("\t")
    assert "Max Memory Used: 128 MB" in fields
    assert fields[-2:] == ["Status: error", "Error Type: Runtime.OutOfMemory"]


def test_filters_on_level_and_time() -> None:
    lines = lines_of(record(output=f"{local(1_800_000_000.3)} WARNING x careful\nplain"))
    wanted = LogFilter(level="WARNING", since=1_800_000_000.2)
    assert [line.message for line in lines if wanted.wants(line)] == ["careful"]
    assert [line.message for line in LogFilter(function="other").lines(record())] == []


def test_levels_and_times_as_given() -> None:
    assert level_name("warn") == "WARNING"
    assert level_name(" Error ") == "ERROR"
    with pytest.raises(ValueError, match="level must be one of DEBUG"):
        level_name("verbose")
    assert since_time("90s", now=1000.0) == 910.0
    assert since_time("2h", now=10_000.0) == 2800.0
    assert since_time("1.5m", now=100.0) == 10.0
    assert (
        since_time("2026-12-01T10:00:00Z", now=0) == datetime.datetime(2026, 12, 1, 10, tzinfo=datetime.UTC).timestamp()
    )
    assert since_time("2026-12-01T12:00:00+02:00", now=0) == since_time("2026-12-01T10:00:00Z", now=0)
    for bad in ("", "10", "10 minutes", "2026-12-01T10:00:00"):
        with pytest.raises(ValueError, match="since must be"):
            since_time(bad, now=0)
    assert rfc3339(1_796_119_200.123) == "2026-12-01T10:00:00.123Z"
