import asyncio
import tempfile
import time
from pathlib import Path

from triggerfish.server.platform import Platform

APP = """
import triggerfish
from triggerfish.workflows import BatchFailedError

app = triggerfish.App("thumbnails")


def resize(ctx, image):
    # Each item runs as a child workflow of its own: its steps are checkpointed and retried on their own.
    return ctx.step(lambda: f"{image}@128px", name="resize")


def index(ctx):
    return "indexed"


def notify(ctx):
    ctx.sleep(0.1)
    return "notified"


@app.workflow
def album_cover(ctx, album):
    return ctx.step(lambda: f"cover of {album}", name="cover")


@app.function
def count(event, context):
    return len(event)


@app.workflow
def album(ctx, images):
    thumbnails = ctx.map(images, resize, max_concurrency=2)
    done = ctx.parallel(index, notify)
    cover = ctx.child(album_cover, "holidays")
    counted = ctx.invoke("count", images)
    try:
        ctx.map(["ok", "broken"], resize_or_fail)
    except BatchFailedError as exc:
        failed = [item.index for item in exc.result.failed()]
    return {
        "thumbnails": thumbnails.results(),
        "done": done.results(),
        "cover": cover,
        "counted": counted,
        "failed": failed,
    }


def resize_or_fail(ctx, image):
    if image == "broken":
        raise ValueError("not an image")
    return image
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        app_file = Path(directory) / "app.py"
        app_file.write_text(APP)
        async with Platform(str(app_file), data_dir=Path(directory) / ".triggerfish") as platform:
            workflow_id = await platform.workflows.start_workflow("album", ["a.jpg", "b.jpg", "c.jpg"])
            deadline = time.monotonic() + 60
            while (record := await platform.workflows.describe(workflow_id))["status"] == "RUNNING":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert record["result"] == {
                "thumbnails": ["a.jpg@128px", "b.jpg@128px", "c.jpg@128px"],
                "done": ["indexed", "notified"],
                "cover": "cover of holidays",
                "counted": 3,
                "failed": [1],
            }
            children = [w for w in await platform.workflows.records() if w["parent"]]
            assert len(children) == 3 + 2 + 1 + 2


asyncio.run(main())
