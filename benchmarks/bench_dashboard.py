"""The dashboard's pages: how long each screen takes to answer with the shop's records behind it.

    scripts/bench dashboard          (or: .venv/bin/python -m benchmarks.run dashboard)

`triggerfish dev examples/shop-choreographed/app.py --quiet --no-reload` on SQLite; ORDERS orders placed first (each
runs 5 to 8 invocations), then each screen asked for ROUNDS times in turn, one request at a time, as a
browser's poll does. Every page is made from the control API, called in process (docs/dashboard.md):
the figure is the whole answer, from the request to the last byte of HTML, median and p90, with the
page's size. The overview and the flow map read up to 1,000 records of the last 5 minutes; the flow
map also reads the 20 newest traces.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.measure import load_average, percentile
from benchmarks.processes import python_env, serve_on_free_port

ROOT = Path(__file__).resolve().parent.parent
ORDERS = int(os.environ.get("TRIGGERFISH_BENCH_DASHBOARD_ORDERS", "150"))
ROUNDS = int(os.environ.get("TRIGGERFISH_BENCH_DASHBOARD_ROUNDS", "20"))
SCREENS = ("/", "/functions", "/functions/place_order", "/invocations", "/events", "/queues", "/schedules", "/flow")
ORDER = {
    "email": "ada@example.com",
    "address": "1 Reef Road",
    "card": "4242424242424242",
    "items": [{"sku": "fish-food", "quantity": 1}],
}


def _settled(http: httpx.Client, expected: int) -> int:
    """Wait until the shop's chains have run (ship_order once per order); how many invocations there are."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = http.get("/-/api/v1/invocations", params={"function": "ship_order", "limit": 1000}).json()
        if len(found["invocations"]) >= expected:
            break
        time.sleep(0.2)
    return len(http.get("/-/api/v1/invocations", params={"limit": 1000}).json()["invocations"])


def main() -> str:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as work:
        data = Path(work)

        def command(port: int) -> list[str]:
            import sys

            app = str(ROOT / "examples" / "shop-choreographed" / "app.py")
            return [sys.executable, "-m", "triggerfish", "dev", app, "--port", str(port), "--no-reload", "--quiet"]

        child, port = serve_on_free_port(
            command,
            lambda p: f"http://127.0.0.1:{p}/-/health",
            log=data / "dev.log",
            cwd=data,
            env=python_env(),
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                for _ in range(ORDERS):
                    assert http.post("/orders", json=ORDER).status_code == 201
                invocations = _settled(http, ORDERS)
                rows = []
                timings: dict[str, list[float]] = {screen: [] for screen in SCREENS}
                sizes: dict[str, int] = {}
                for _ in range(ROUNDS):
                    for screen in SCREENS:
                        began = time.perf_counter()
                        answer = http.get(f"/-/ui{screen}")
                        timings[screen].append((time.perf_counter() - began) * 1000)
                        assert answer.status_code == 200, (screen, answer.status_code)
                        sizes[screen] = len(answer.content)
                for screen in SCREENS:
                    values = timings[screen]
                    rows.append(
                        f"| `/-/ui{screen}` | {statistics.median(values):.1f} | {percentile(values, 90):.1f} |"
                        f" {sizes[screen] / 1024:.0f} KB |"
                    )
        finally:
            child.stop()
    header = (
        "## Dashboard pages\n\n"
        f"`triggerfish dev examples/shop-choreographed/app.py` on SQLite after {ORDERS} orders"
        f" ({invocations} invocation attempts kept, the overview reading up to 1,000 of them); each screen asked for"
        f" {ROUNDS} times in turn, one at a time. Load average (1 min) at the end: {load_average():.2f}.\n\n"
        "| page | median ms | p90 ms | size |\n|---|---|---|---|"
    )
    return "\n".join([header, *rows])
