"""AWS durable functions beside native workflows: executions of three no-op steps completed per second, the
handler written once with AWS's durable execution SDK (`@durable_execution`, checkpointing through boto3 to the
platform's `/-/aws`) and once with `@app.workflow`, on SQLite and on PostgreSQL.

    .venv/bin/python -m benchmarks.run durable

The platform runs as `triggerfish dev` runs it (worker processes forked from the app's zygote, the store in
this process, the AWS endpoint on a loopback socket that the workers' boto3 reaches). Each round starts
EXECUTIONS of each kind at once over `Workflows.start_workflow` and waits until all have SUCCEEDED:
executions per second is EXECUTIONS over the time from the first start to the last one's end (as its record
says). The two kinds and the backends take turns, round by round (the machine is shared and noisy).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from benchmarks import postgres
from benchmarks.measure import interleave, load_average, loads, spread
from triggerfish.aws.credentials import DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY, function_environment
from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

EXECUTIONS = 200
ROUNDS = 3

APP = """
import triggerfish
from aws_durable_execution_sdk_python import DurableContext, durable_execution

app = triggerfish.App("bench")


def noop(value):
    return value


@app.function(durable=True, concurrency=16, timeout=60)
@durable_execution
def sdk(event, context: DurableContext):
    context.step(lambda _: noop(1), name="one")
    context.step(lambda _: noop(2), name="two")
    return context.step(lambda _: noop(3), name="three")


@app.workflow(concurrency=16)
def native(ctx, input):
    ctx.step(noop, 1)
    ctx.step(noop, 2)
    return ctx.step(noop, 3)
"""


async def _until_done(platform: Platform, function: str, ids: list[str], within: float) -> float:
    """When the last of `ids` ended, once all have SUCCEEDED (polled slowly: a listing reads every record)."""
    deadline = time.monotonic() + within
    wanted = set(ids)
    while True:
        done = {r["id"]: r["ended"] for r in await platform.workflows.records(function=function, status="SUCCEEDED")}
        if wanted <= done.keys():
            return float(max(done[i] for i in wanted))
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(wanted - done.keys())} executions of {function} were not done in {within:g} s")
        await asyncio.sleep(0.5)


async def _round(platform: Platform, function: str, count: int) -> float:
    began = time.time()
    ids = list(await asyncio.gather(*(platform.workflows.start_workflow(function, n) for n in range(count))))
    return count / (await _until_done(platform, function, ids, 600) - began)


async def _measure(store_url: str, directory: Path) -> dict[str, float]:
    app_file = directory / "app.py"
    app_file.write_text(APP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    platform = Platform(str(app_file), data_dir=directory / "data", store_url=store_url)
    platform.environment = function_environment(url, DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY)
    await platform.start()
    try:
        async with GatewayServer(platform_asgi(platform, None), port=port):
            # Warm the pools first (a worker per slot, the SDK imported), so a round measures executions.
            await _round(platform, "sdk", 16)
            await _round(platform, "native", 16)
            return {
                "sdk": await _round(platform, "sdk", EXECUTIONS),
                "native": await _round(platform, "native", EXECUTIONS),
            }
    finally:
        await platform.stop()


def _system(url: Callable[[ExitStack], str]) -> Callable[[], dict[str, float]]:
    def run() -> dict[str, float]:
        with ExitStack() as stack, tempfile.TemporaryDirectory() as directory:
            return asyncio.run(_measure(url(stack), Path(directory)))

    return run


def main() -> str:
    started = time.monotonic()
    systems: dict[str, Callable[[], dict[str, float]]] = {"SQLite": _system(lambda stack: "")}
    reason = postgres.unavailable()
    if reason is None:
        systems["PostgreSQL"] = _system(lambda stack: stack.enter_context(postgres.fresh_schema()))
    measured = interleave(systems, ROUNDS)
    lines = [
        "## AWS durable functions beside native workflows",
        "",
        f"{EXECUTIONS} executions of three no-op steps started at once and run to the end, {ROUNDS} rounds (median,"
        " lowest to highest): the AWS SDK's `@durable_execution` handler (checkpoints over HTTP to `/-/aws`)"
        " and the same three steps as an `@app.workflow` (checkpoints as platform calls), one platform.",
        "",
        "| store | AWS SDK executions/s | native workflows/s | load averages |",
        "|---|---|---|---|",
    ]
    for name, runs in measured.items():
        if runs.error:
            lines.append(f"| {name} | could not run: {runs.error} | | |")
            continue
        lines.append(
            f"| {name} | {spread(runs.values(lambda r: r['sdk']))} | {spread(runs.values(lambda r: r['native']))}"
            f" | {loads(runs)} |"
        )
    if reason is not None:
        lines.append(f"| PostgreSQL | not run: {reason} | | |")
    lines += ["", f"_{time.monotonic() - started:.0f} s, load average {load_average():.1f} at the end._", ""]
    return "\n".join(lines)
