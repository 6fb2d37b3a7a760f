"""`context.objects` in a handler: small objects read and written through the platform, without boto3.

    context.objects.put("thumbnails", "cat.jpg", data, content_type="image/jpeg")
    data = context.objects.get("photos", "cat.jpg")            # bytes, or None when there is none
    context.objects.delete("photos", "cat.jpg")
    [{"key": ..., "size": ..., "etag": ...}] = context.objects.list("photos", prefix="cats/")

The calls travel as the platform call `objects` (bytes base64-encoded) and run here, in the platform,
on the app's `ObjectStore`: a put fires `@app.on_object` as an upload does. Bodies cross the worker's
pipe whole, so this is for objects up to MAX_CALL_BYTES; larger ones go through boto3 (streamed).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Callable
from typing import Any

from triggerfish.errors import InvalidInputError
from triggerfish.objects.model import ObjectError
from triggerfish.objects.service import Content, ObjectStore, Requester
from triggerfish.runtime.types import PlatformCall

#: Largest object `context.objects` moves in one call (bytes): the rest is boto3's.
MAX_CALL_BYTES = 4 * 1024 * 1024


class ObjectCalls:
    """Answers handlers' `objects` platform calls on the app's object store (looked up when called)."""

    def __init__(self, objects: Callable[[], ObjectStore]) -> None:
        self._objects = objects

    async def call(self, call: PlatformCall, args: dict[str, Any]) -> Any:
        objects = self._objects()
        action, bucket = args.get("action"), _text(args, "bucket")
        try:
            if action == "get":
                try:
                    meta, file = await objects.open(bucket, _text(args, "key"))
                except ObjectError as exc:
                    if exc.code == "NoSuchKey":
                        return None
                    raise
                with file:
                    if meta.size > MAX_CALL_BYTES:
                        raise InvalidInputError(
                            f"context.objects.get: {bucket}/{meta.key} is {meta.size} bytes, over the"
                            f" {MAX_CALL_BYTES} a call carries; read it with boto3 (streamed)"
                        )
                    data = await file.read_all()
                return {"body_base64": base64.b64encode(data).decode(), "etag": meta.etag, "type": meta.content_type}
            if action == "put":
                data = _body(args)
                content = Content(
                    str(args.get("content_type") or "binary/octet-stream"), {}, dict(args.get("metadata") or {})
                )
                meta = await objects.put_object(
                    bucket,
                    _text(args, "key"),
                    _once(data),
                    content=content,
                    requester=Requester(call.request_id, "127.0.0.1", call.function, call.traceparent),
                )
                return {"etag": meta.etag}
            if action == "delete":
                await objects.delete_object(
                    bucket,
                    _text(args, "key"),
                    requester=Requester(call.request_id, "127.0.0.1", call.function, call.traceparent),
                )
                return None
            if action == "list":
                listing = await objects.list_objects(bucket, prefix=str(args.get("prefix") or ""), max_keys=1000)
                return [{"key": m.key, "size": m.size, "etag": m.etag, "modified": m.modified} for m in listing.objects]
        except ObjectError as exc:
            raise InvalidInputError(f"context.objects.{action}: {exc.code}: {exc.message}") from None
        raise InvalidInputError(f"context.objects: unknown action {action!r}; use get, put, delete or list")


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"context.objects: {name} must be a non-empty string, not {value!r}")
    return value


def _body(args: dict[str, Any]) -> bytes:
    try:
        data = base64.b64decode(str(args.get("body_base64", "")), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("context.objects.put: the body did not arrive as base64") from None
    if len(data) > MAX_CALL_BYTES:
        raise InvalidInputError(
            f"context.objects.put: the body is {len(data)} bytes, over the {MAX_CALL_BYTES} a call carries;"
            " write it with boto3 (streamed)"
        )
    return data


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
