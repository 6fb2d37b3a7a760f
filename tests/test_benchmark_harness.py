"""The benchmark harness's own logic: turns and spreads, wrk's figures, the entry log, py-spy's samples, /proc's
thread counters.

The benchmarks themselves are not run here (performance is never asserted in
the suite); what is tested is what decides the figures they print.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from benchmarks.bench_events import EntryLog
from benchmarks.bench_http import STARLETTE, STARLETTE_HOP, _uvicorn
from benchmarks.measure import EN_DASH, interleave, percentile, spread
from benchmarks.processes import serve_on_free_port
from benchmarks.profile import summarize
from benchmarks.thread_costs import Task, describe, parts, read_task
from benchmarks.wakeups import main as wakeups
from benchmarks.wakeups import round_trip_us
from benchmarks.wrk import parse


def test_systems_take_turns_and_a_failing_one_keeps_its_reason() -> None:
    order: list[str] = []

    def system(name: str) -> Callable[[], int]:
        def run() -> int:
            order.append(name)
            if name == "b":
                raise RuntimeError("no redis-server")
            return len(order)

        return run

    runs = interleave({name: system(name) for name in "abc"}, 3)

    assert order == ["a", "b", "c", "a", "c", "a", "c"]
    assert [r.round for r in runs["a"].runs] == [1, 2, 3]
    assert runs["b"].runs == []
    assert runs["b"].error == "RuntimeError: no redis-server"
    assert all(r.load >= 0 for r in runs["c"].runs)


def test_spread_is_the_median_with_the_lowest_and_highest() -> None:
    assert spread([3050.0, 3330.0, 3210.0]) == f"3,210 (3,050{EN_DASH}3,330)"
    assert spread([0.25], 2) == "0.25"
    assert spread([-0.001, 0.0, 0.012], 2) == f"0.00 (0.00{EN_DASH}0.01)"  # never "-0.00"
    assert spread([]) == "-"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert math.isnan(percentile([], 0.5))


def test_wrk_figures_come_from_the_scripts_json_line() -> None:
    output = (
        "Running 5s test @ http://127.0.0.1:1/hello\n"
        '{"requests": 15000, "duration_us": 5000000, "connect": 0, "read": 1, "write": 0, "status": 2, '
        '"timeout": 0, "p50_us": 1500.0, "p90_us": 2500.0, "p99_us": 9000.0, "mean_us": 1700.0, "max_us": 20000.0}\n'
    )

    result = parse(output)

    assert result.rps == 3000.0
    assert (result.p50_ms, result.p99_ms) == (1.5, 9.0)
    assert result.errors == 3  # a read error and two answers that were not 2xx or 3xx count


def test_wrk_output_without_figures_is_an_error() -> None:
    with pytest.raises(ValueError, match="no figures"):
        parse("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_entry_log_keeps_a_line_cut_short_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "entries.log"
    log = EntryLog(path)
    assert log.read_new() == []  # no file yet: no handler has run
    path.write_bytes(b"e-1 1.5\ne-2 1.")

    assert log.read_new() == [["e-1", "1.5"]]

    with path.open("ab") as handle:
        handle.write(b"75\n")
    assert log.read_new() == [["e-2", "1.75"]]
    assert log.read_new() == []


def test_profile_samples_are_summed_per_thread_and_function() -> None:
    raw = (
        "thread (10): MainThread;run (asyncio/runners.py:190);Gateway._http (/x/triggerfish/gateway/asgi.py:200) 3\n"
        "thread (10): MainThread;run (asyncio/runners.py:190) 1\n"
        "thread (11): triggerfish-store-writer:/tmp/s.db;Worker._run (/x/triggerfish/store/_sqlite_worker.py:92) 2\n"
    )

    threads = summarize(raw)

    main = threads["MainThread"]
    assert main.samples == 4
    assert main.inclusive["run (asyncio/runners.py)"] == 4
    assert main.own["Gateway._http (triggerfish/gateway/asgi.py)"] == 3
    assert threads["triggerfish-store-writer"].own["Worker._run (triggerfish/store/_sqlite_worker.py)"] == 2


def test_the_process_hop_floor_answers_what_bare_starlette_answers(tmp_path: Path) -> None:
    # The floor is only a floor if its workers do the same work and answer the same bytes, on a real server.
    answers: dict[str, list[httpx.Response]] = {}
    for app in (STARLETTE, STARLETTE_HOP):
        server, port = serve_on_free_port(
            lambda port, app=app: _uvicorn(app, "uvloop")(port, tmp_path),  # type: ignore[misc]
            lambda port: f"http://127.0.0.1:{port}/hello",
            log=tmp_path / "server.log",
        )
        try:
            answers[app] = [httpx.get(f"http://127.0.0.1:{port}/hello?n={n}") for n in ("0", "7", "123456")]
        finally:
            server.stop()
    for bare, hop in zip(answers[STARLETTE], answers[STARLETTE_HOP], strict=True):
        assert hop.status_code == bare.status_code == 200
        assert hop.headers["content-type"] == bare.headers["content-type"] == "application/json"
        assert hop.json() == bare.json()
    assert [answer.json()["n"] for answer in answers[STARLETTE_HOP]] == [0, 7, 123456]


def test_thread_costs_split_a_platform_into_its_loop_its_threads_and_its_workers() -> None:
    tick = os.sysconf("SC_CLK_TCK")
    stat = f"12 (python3 (x)) S 1 12 12 0 -1 4194560 0 0 0 0 {3 * tick} {tick} 0 0 20 0 1 0 1 1 1"
    status = "Name:\tpython3\nvoluntary_ctxt_switches:\t40\nnonvoluntary_ctxt_switches:\t7\n"
    task = read_task(stat, status)
    assert (task.user, task.system, task.voluntary, task.involuntary) == (3.0, 1.0, 40, 7)

    used = {
        (12, 12): Task(0.2, 0.1, 10, 5),  # the platform's main thread: its event loop
        (12, 13): Task(0.05, 0.05, 30, 1),
        (12, 14): Task(0.01, 0.0, 2, 0),
        (20, 20): Task(0.1, 0.02, 100, 3),  # a worker
    }
    split = parts(12, used)
    assert split["event loop"] == Task(0.2, 0.1, 10, 5)
    assert split["other threads"].voluntary == 32
    assert split["busiest other thread"] == Task(0.05, 0.05, 30, 1)
    assert split["workers"] == Task(0.1, 0.02, 100, 3)
    assert describe(split["workers"], 100) == "1000 + 200 µs, 1.00 / 0.03"


def test_the_wake_up_probe_times_a_round_trip_on_one_core_and_across_two(capsys: pytest.CaptureFixture[str]) -> None:
    first = min(os.sched_getaffinity(0))
    assert 0 < round_trip_us(200, (first, first)) < 100_000
    wakeups(["--round-trips", "200", "--rounds", "1"])
    table = capsys.readouterr().out
    assert "| one core |" in table
    if len(os.sched_getaffinity(0)) > 1:
        assert "| two cores |" in table
