"""Settings every test shares: the per-test timeout (pyproject's `timeout`, or a test's own mark) stretched with the
machine's load, as every other deadline of the tests is (tests/patience.py)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_timeout  # type: ignore[import-untyped]

from tests.patience import patience, scaled


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> object:
    # The timeout guards against a hang; on a loaded machine a test that does not hang takes longer by the load
    # per core. Read when the test starts, so a test run while the load rises gets the time it needs.
    settings = settings._replace(timeout=scaled(settings.timeout))
    if item.get_closest_marker("asyncio") is not None:
        # SIGALRM's exception is raised in whichever asyncio task is running when it comes, and a task that is
        # not the test's keeps it to itself: a hung async test then hung for good (seen: 17 minutes in a
        # fixture's teardown past a 6-minute timeout). The thread method prints every thread's stack and ends
        # the process instead (under xdist, the worker: the test is reported as crashed and the run goes on).
        settings = settings._replace(method="thread")
    return pytest_timeout.pytest_timeout_set_timer(item, settings)


def pytest_report_header(config: pytest.Config) -> str:
    return f"deadlines stretched {patience():.1f}x by load (TRIGGERFISH_TEST_PATIENCE sets it)"
