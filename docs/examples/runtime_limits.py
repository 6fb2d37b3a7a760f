"""A worker's limits: memory (RLIMIT_AS), processes (pids cgroup or RLIMIT_NPROC), and what is enforced here."""

import asyncio
from pathlib import Path

from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.runtime.types import InvokeRequest

Path("greedy.py").write_text("""
from triggerfish import App

app = App("greedy")


@app.function(memory_mb=128, timeout=2.0)
def hoard(event, context):
    chunks = []
    while True:
        chunks.append(bytearray(16 * 1024 * 1024))
""")


async def main() -> None:
    runner = await ProcessRunner.start("greedy.py", work_dir=Path(".triggerfish"), max_processes=32)
    try:
        outcome = await runner.run(InvokeRequest(request_id="r-1", function="hoard", event=None))
        limits = runner.stats("hoard")["limits"]
    finally:
        await runner.close()

    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.OutOfMemory"
    assert "128 MB" in outcome.error["errorMessage"]
    assert limits["memory"] == "RLIMIT_AS"
    assert limits["max_processes"] == 32
    # "pids cgroup (pids.max)", "RLIMIT_NPROC", or "none" (then also in "unenforced" and the log).
    print("processes limited by:", limits["processes"], "| not enforced:", limits["unenforced"] or "nothing")


asyncio.run(main())
