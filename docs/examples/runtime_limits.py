"""A worker's limits: memory (a memory cgroup, else RLIMIT_AS), processes (pids cgroup or RLIMIT_NPROC), /tmp, and
what is enforced here."""

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
        chunks.append(b"x" * (16 * 1024 * 1024))  # written, so resident: what the limit counts
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
    if limits["memory"] == "RLIMIT_AS":  # no memory controller here: Python's MemoryError, naming the limit
        assert "128 MB" in outcome.error["errorMessage"]
    else:  # "memory cgroup v2 (memory.max)" or "memory cgroup v1 (memory.limit_in_bytes)": the OOM killer
        assert outcome.error["errorMessage"] == "RequestId: r-1 Error: Runtime exited with error: signal: killed"
        assert outcome.max_memory_used_mb is not None
        assert outcome.max_memory_used_mb <= 128
    assert limits["max_processes"] == 32
    assert limits["ephemeral_storage_mb"] == 512
    # "pids cgroup (pids.max)", "RLIMIT_NPROC", or "none" (then also in "unenforced" and the log).
    print("memory limited by:", limits["memory"], "| processes by:", limits["processes"])
    print("not enforced:", limits["unenforced"] or "nothing")


asyncio.run(main())
