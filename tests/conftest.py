"""Settings every test shares: the per-test timeout (pyproject's `timeout`, or a test's own mark) stretched with the
machine's load, as every other deadline of the tests is (tests/patience.py), and a hung async test's threads and
tasks reported at the end of the run (tests/hang_report.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import pytest_timeout  # type: ignore[import-untyped]

from tests import hang_report
from tests.patience import patience, scaled


def pytest_configure(config: pytest.Config) -> None:
    if hang_report.is_controller(config):
        hang_report.start_run()


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> object:
    # The timeout guards against a hang; on a loaded machine a test that does not hang takes longer by the load
    # per core. Read when the test starts, so a test run while the load rises gets the time it needs.
    settings = settings._replace(timeout=scaled(settings.timeout))
    if item.get_closest_marker("asyncio") is None or settings.timeout <= 0:
        return pytest_timeout.pytest_timeout_set_timer(item, settings)

    # SIGALRM's exception is raised in whichever asyncio task is running when it comes, and a task that is
    # not the test's keeps it to itself: a hung async test then hung for good (seen: 17 minutes in a
    # fixture's teardown past a 6-minute timeout). The thread method prints every thread's stack and ends
    # the process instead (under xdist, the worker: the test is reported as crashed and the run goes on);
    # the report of its tasks comes first, for the end of the run.
    def timed_out() -> None:
        hang_report.write(item.nodeid, settings.timeout)
        pytest_timeout.timeout_timer(item, settings)

    timer = threading.Timer(settings.timeout, timed_out)
    timer.name = f"pytest_timeout {item.nodeid}"

    def cancel() -> None:
        timer.cancel()
        timer.join()

    item.cancel_timeout = cancel  # type: ignore[attr-defined]
    timer.start()
    return True


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if hang_report.is_controller(config):
        hang_report.print_reports(terminalreporter)


def pytest_report_header(config: pytest.Config) -> str:
    return f"deadlines stretched {patience():.1f}x by load (TRIGGERFISH_TEST_PATIENCE sets it)"
