"""An app in a box: its own uid (as root), its own pids, only its code and its tmpfs, none of the server's secrets."""

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from triggerfish.isolation.box import Box
from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.runtime.types import InvokeRequest

APP = """
import os
from triggerfish import App

app = App("tenant")


@app.function()
def probe(event, context):
    try:
        secret = open(event).read()
    except OSError as exc:
        secret = type(exc).__name__
    return {
        "uid": os.getuid(),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "secret": secret,
        "password": os.environ.get("DATABASE_PASSWORD"),
        "pids": sorted(int(name) for name in os.listdir("/proc") if name.isdigit()),
    }
"""


def write_files() -> Path:
    """What the server keeps (its keys), and the app's own directory, which is bound read-only into its box."""
    server_files = Path(tempfile.mkdtemp())
    (server_files / "admin.key").write_text("tfk_the_admin_key")
    Path("tenant").mkdir(exist_ok=True)
    Path("tenant/app.py").write_text(APP)
    return server_files


async def main() -> None:
    server_files = write_files()
    os.environ["DATABASE_PASSWORD"] = "hunter2"  # in the server's environment, never in an app's
    # As root, the box runs as a uid of the app's own; otherwise as this process's uid.
    uid = 1_900_000_042 if os.geteuid() == 0 else None
    runner = await ProcessRunner.start("tenant/app.py", work_dir=Path("work"), box=Box(uid=uid, gid=uid))
    try:
        key = str(server_files / "admin.key")
        outcome = await runner.run(InvokeRequest(request_id="r-1", function="probe", event=key))
    finally:
        await runner.close()
        shutil.rmtree(server_files)

    seen = outcome.result
    assert seen["secret"] == "FileNotFoundError"  # the server's files are not in the box
    assert seen["password"] is None  # nor its environment
    assert seen["cwd"] == "/home/app/functions/probe"  # the working directory is in the box's size-limited home
    assert seen["uid"] == (uid if uid is not None else os.getuid())
    # Its own pid namespace: /proc shows its zygotes and itself; the parent knows it by another number.
    assert len(seen["pids"]) <= 3
    assert seen["pid"] != outcome.worker_pid
    print(f"uid {seen['uid']}; pid {seen['pid']} inside, {outcome.worker_pid} outside; it sees pids {seen['pids']}")


if shutil.which("bwrap") is None:
    print("bubblewrap is not installed: apt-get install bubblewrap")
else:
    asyncio.run(main())
