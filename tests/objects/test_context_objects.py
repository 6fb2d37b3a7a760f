"""`context.objects` in a handler (on `triggerfish.testing`'s platform): small objects read and written without
boto3; a put fires `@app.on_object` as an upload does."""

from __future__ import annotations

from typing import Any

import pytest

from triggerfish import App
from triggerfish.errors import HandlerError
from triggerfish.testing import TestPlatform

app = App("notes")


@app.function()
def write(event: dict[str, Any], context: Any) -> str:
    etag: str = context.objects.put(
        "notes", event["key"], event["text"], content_type="text/plain", metadata={"by": "write"}
    )
    return etag


@app.function()
def read(event: dict[str, Any], context: Any) -> dict[str, Any]:
    data = context.objects.get("notes", event["key"])
    listed = context.objects.list("notes", prefix="")
    return {"text": None if data is None else data.decode(), "keys": [item["key"] for item in listed]}


@app.function()
def remove(event: dict[str, Any], context: Any) -> None:
    context.objects.delete("notes", event["key"])


@app.function()
def stray(event: dict[str, Any], context: Any) -> Any:
    return context.objects.get("no-such-bucket", "k")


@app.on_object("notes", events=["created"])
def on_note(event: dict[str, Any], context: Any) -> None:
    for record in event["Records"]:
        context.send("noted", record["s3"]["object"]["key"])


async def test_a_handler_reads_and_writes_objects_and_a_put_fires_on_object() -> None:
    async with TestPlatform(app) as platform:
        etag = await platform.invoke("write", {"key": "day one.txt", "text": "calm seas"})
        assert etag == "8535b836caf6db746d6408f6b1d15218"  # the MD5 of the text
        assert await platform.invoke("read", {"key": "day one.txt"}) == {"text": "calm seas", "keys": ["day one.txt"]}
        await platform.drain()
        (noted,) = await platform.store.queues.receive("noted", wait=5)
        assert noted.body == b"day+one.txt"
        await platform.invoke("remove", {"key": "day one.txt"})
        assert await platform.invoke("read", {"key": "day one.txt"}) == {"text": None, "keys": []}


async def test_a_missing_bucket_fails_the_call_naming_it() -> None:
    async with TestPlatform(app) as platform:
        with pytest.raises(HandlerError, match="NoSuchBucket"):
            await platform.invoke("stray", {})


traced = App("traced-objects")


@traced.function()
def upload(event: dict[str, Any], context: Any) -> str:
    context.objects.put("photos", "cat.jpg", b"meow")
    return str(context.traceparent)


@traced.on_object("photos", events=["created"])
def thumbnail(event: dict[str, Any], context: Any) -> None:
    context.send("thumbnailed", str(context.traceparent))


async def test_the_function_an_upload_fires_continues_the_uploaders_trace() -> None:
    async with TestPlatform(traced) as platform:
        uploader = await platform.invoke("upload", {})
        await platform.drain()
        (fired,) = await platform.store.queues.receive("thumbnailed", wait=5)
        trace = uploader.split("-")[1]
        # The same trace, a span of its own whose parent is the uploader's.
        assert fired.body.decode().split("-")[1] == trace
        assert fired.body.decode() != uploader
        (record,) = await platform.platform.current.invoker.records.query("thumbnail")
        assert record.trace_id == trace
        assert record.parent_span_id == uploader.split("-")[2]
