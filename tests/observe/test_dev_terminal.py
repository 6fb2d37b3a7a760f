"""`triggerfish dev` as a user runs it: each invocation's lines as it ends (or none with --quiet), `triggerfish usage`
against it, and the printer's colours."""

from __future__ import annotations

import io
import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import run
from tests.server.devserver import DevServer
from triggerfish.observe.terminal import InvocationPrinter
from triggerfish.runtime.records import InvocationRecord

APP = """
import logging

import triggerfish

app = triggerfish.App("loud")


@app.function(memory_mb=256)
def ship(event, context):
    print("packing", event["order"])
    logging.getLogger("shop").warning("courier is slow today")
    return "shipped"


@app.function()
def refund(event, context):
    raise ValueError(f"order {event['order']} was never paid")
"""

CLOCK = r"\d\d:\d\d:\d\d\.\d{3}"


def start_dev(directory: Path, *flags: str) -> DevServer:
    (directory / "app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    server = DevServer("app.py", "--port", "0", "--data-dir", str(directory / "data"), "--no-reload", *flags,
                       cwd=directory)  # fmt: skip
    return server.start()


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = start_dev(tmp_path_factory.mktemp("dev"))
    try:
        yield server
    finally:
        server.stop()


def invoke(url: str, function: str, event: dict[str, str]) -> str:
    answer = httpx.post(f"{url}/-/api/v1/functions/{function}/invoke", json=event, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-triggerfish-request-id"]


def test_dev_prints_each_invocations_output_error_and_report_as_it_ends(dev: DevServer) -> None:
    shipped = invoke(dev.url, "ship", {"order": "o-1"})[:8]
    report = dev.wait_for_line(lambda line: f"ship {shipped} REPORT" in line)
    assert re.fullmatch(
        CLOCK
        + rf" ship {shipped} REPORT succeeded in \d+\.\d\d ms \(billed \d+ ms, 256 MB, cold start: init [\d.]+ ms\)",
        report,
    ), report
    mine = [line for line in dev.lines if f" {shipped} " in line]
    assert re.fullmatch(CLOCK + rf" ship {shipped} INFO packing o-1", mine[0]), mine
    assert mine[1].endswith(f"ship {shipped} WARNING courier is slow today")

    refunded = invoke(dev.url, "refund", {"order": "o-2"})[:8]
    report = dev.wait_for_line(lambda line: f"refund {refunded} REPORT" in line)
    assert " REPORT failed in " in report
    errors = [line for line in dev.lines if f"refund {refunded} ERROR" in line]
    assert errors[0].endswith("ERROR ValueError: order o-2 was never paid")
    assert "\x1b[" not in "".join(dev.lines)  # no colour into a pipe


def test_quiet_prints_no_invocation_lines(tmp_path: Path) -> None:
    server = start_dev(tmp_path, "--quiet")
    try:
        invoke(server.url, "ship", {"order": "o-3"})
        invoke(server.url, "refund", {"order": "o-4"})  # its record is stored before the answer: all would be out
    finally:
        server.stop()
    assert not [line for line in server.lines if " REPORT " in line or "packing" in line], server.output()


def test_usage_verb_shows_rows_a_total_and_costs(dev: DevServer) -> None:
    for n in range(2):
        invoke(dev.url, "ship", {"order": f"u-{n}"})
    env = {"TRIGGERFISH_SERVER": dev.url}
    done = run("usage", "--json", "--lambda-prices", env=env)
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {row["key"]: row for row in report["rows"]}
    assert rows["ship"]["invocations"] >= 2
    assert rows["ship"]["gb_seconds"] == pytest.approx(rows["ship"]["billed_ms"] / 1000 * 256 / 1024)
    assert rows["ship"]["bytes_in"] >= 2 * len(b'{"order":"u-0"}')
    assert report["prices"] == {"gb_second": 0.0000166667, "million_requests": 0.2}
    assert report["total"]["cost"] == pytest.approx(
        report["total"]["gb_seconds"] * 0.0000166667 + report["total"]["requests"] / 1e6 * 0.2
    )

    table = run("usage", "--by", "day", env=env)
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "DAY", "INVOCATIONS", "REQUESTS", "ERRORS", "BILLED_S", "GB_SECONDS", "BYTES_IN", "BYTES_OUT"
    ]  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\d +\d+ +\d+ +\d+ +[\d.]+ +[\d.]+ +\d+ +\d+", lines[1]), lines
    assert lines[-1].startswith("total ")

    refused = run("usage", "--lambda-prices", "--gb-second-price", "1", env=env)
    assert refused.exit_code == 2
    assert "--lambda-prices sets both prices" in refused.stderr


def test_the_printer_colours_levels_and_outcomes_when_asked() -> None:
    record = InvocationRecord(
        request_id="4f1c2e9a-rest",
        function="ship",
        version="1",
        trigger="http",
        attempt=2,
        status="failed",
        started_at=0.0,
        ended_at=0.002,
        duration_ms=2.0,
        billed_duration_ms=2,
        memory_mb=128,
        gb_seconds=0.0,
        error={"errorType": "ValueError", "errorMessage": "no", "stackTrace": []},
    )
    coloured = InvocationPrinter(io.StringIO(), colour=True).render(record)
    assert "\x1b[31m" in coloured  # red: the error line and the failed status
    plain = InvocationPrinter(io.StringIO()).render(record)
    assert plain.splitlines()[-1].endswith("ship 4f1c2e9a REPORT failed in 2.00 ms (billed 2 ms, 128 MB, attempt 2)")
    broken = io.StringIO()
    broken.close()
    InvocationPrinter(broken)(record)  # a closed output stops the printer, never the platform


def test_traces_verb_lists_recent_traces_and_draws_one(dev: DevServer) -> None:
    request_id = invoke(dev.url, "ship", {"order": "t-1"})
    (record,) = httpx.get(f"{dev.url}/-/api/v1/invocations/{request_id}", timeout=30).json()["attempts"]
    trace_id = record["trace_id"]
    env = {"TRIGGERFISH_SERVER": dev.url}

    listed = run("traces", "--since", "10m", "--json", env=env)
    assert listed.exit_code == 0, listed.stderr
    (mine,) = [t for t in json.loads(listed.stdout)["traces"] if t["trace_id"] == trace_id]
    assert (mine["root"], mine["invocations"], mine["functions"]) == ("ship", 1, ["ship"])

    drawn = run("traces", trace_id, env=env)
    assert drawn.exit_code == 0, drawn.stderr
    lines = drawn.stdout.splitlines()
    assert lines[0] == f"trace {trace_id}: 1 spans"
    assert re.fullmatch(r"ship \(internal\)  \|█+ *\|  +[\d.]+ ms  " + request_id, lines[1]), lines

    refused = run("traces", "not-a-trace", env=env)
    assert refused.exit_code == 2
    assert "32 lowercase hex" in refused.stderr
    missing = run("traces", "b" * 32, env=env)
    assert missing.exit_code == 1
    assert "TraceNotFound" in missing.stderr or "no span of trace" in missing.stderr
