"""`context.objects`: a handler's small API over its app's object store (the platform call `objects`).

    data = context.objects.get("photos", "cats/tom.jpg")          # bytes, or None when there is none
    etag = context.objects.put("thumbnails", "cats/tom.jpg", small, content_type="image/jpeg")
    context.objects.delete("photos", "cats/tom.jpg")
    for item in context.objects.list("photos", prefix="cats/"):   # {"key", "size", "etag", "modified"}
        ...

Light on purpose (workers import it): the work is done by the platform (triggerfish.objects.calls).
Objects up to 4 MiB; boto3 (which the platform also configures) streams larger ones.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any


class ObjectsClient:
    def __init__(self, call_platform: Callable[[str, dict[str, Any]], Any]) -> None:
        self._call = call_platform

    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when the key holds none. Raises InvalidInputError for a missing bucket."""
        answer = self._call("objects", {"action": "get", "bucket": bucket, "key": key})
        return None if answer is None else base64.b64decode(answer["body_base64"])

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes | str,
        *,
        content_type: str = "binary/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Store an object (firing `@app.on_object` as an upload does); its ETag."""
        data = body.encode() if isinstance(body, str) else bytes(body)
        answer = self._call(
            "objects",
            {
                "action": "put",
                "bucket": bucket,
                "key": key,
                "body_base64": base64.b64encode(data).decode("ascii"),
                "content_type": content_type,
                "metadata": dict(metadata or {}),
            },
        )
        return str(answer["etag"])

    def delete(self, bucket: str, key: str) -> None:
        self._call("objects", {"action": "delete", "bucket": bucket, "key": key})

    def list(self, bucket: str, *, prefix: str = "") -> list[dict[str, Any]]:
        """The first 1,000 objects whose keys start with `prefix`, in key order."""
        listed: list[dict[str, Any]] = self._call("objects", {"action": "list", "bucket": bucket, "prefix": prefix})
        return listed
