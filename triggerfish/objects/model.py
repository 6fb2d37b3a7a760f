"""What the object store keeps about buckets, objects and multipart uploads, and S3's naming rules.

Pure: dataclasses with their JSON form (a key-value record each, see index.py) and the checks
of bucket names and object keys, each raising `InvalidObjectNameError` that says what S3 allows.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from triggerfish.errors import InvalidInputError, TriggerfishError

#: Longest object key S3 takes, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class ObjectError(TriggerfishError):
    """An object operation refused: `code` is S3's error code, `status` its HTTP status.

    `resource` names what it was about (a bucket, a key) for the error document.
    """

    def __init__(self, code: str, message: str, *, status: int = 400, resource: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.resource = resource


class InvalidObjectNameError(ObjectError, InvalidInputError):
    """A bucket name or object key S3 would refuse."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, status=400)


def check_bucket_name(name: object) -> str:
    """`name` if S3 takes it as a bucket name; raises InvalidObjectNameError naming the rule it breaks."""
    if not isinstance(name, str) or not _BUCKET.fullmatch(name):
        raise InvalidObjectNameError(
            "InvalidBucketName",
            f"invalid bucket name {name!r}: use 3 to 63 characters from lowercase letters, digits, '.' and '-',"
            " starting and ending with a letter or digit",
        )
    if ".." in name or ".-" in name or "-." in name:
        raise InvalidObjectNameError(
            "InvalidBucketName", f"invalid bucket name {name!r}: no two periods, or a period and a hyphen, side by side"
        )
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return name
    raise InvalidObjectNameError(
        "InvalidBucketName", f"invalid bucket name {name!r}: it must not read as an IP address"
    )


def check_object_key(key: object) -> str:
    """`key` if S3 takes it as an object key (1 to 1024 UTF-8 bytes); raises InvalidObjectNameError."""
    if not isinstance(key, str) or not key:
        raise InvalidObjectNameError("InvalidArgument", "an object key must be a non-empty string")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidObjectNameError("InvalidArgument", f"object key {key!r} is not valid UTF-8") from None
    if size > MAX_KEY_BYTES:
        raise InvalidObjectNameError(
            "KeyTooLongError", f"object key is {size} bytes in UTF-8; S3 keys are at most {MAX_KEY_BYTES} bytes"
        )
    if "\x00" in key:
        raise InvalidObjectNameError("InvalidArgument", f"object key {key!r} holds a NUL character")
    return key


@dataclass(frozen=True, slots=True)
class BucketMeta:
    name: str
    created: float

    def encode(self) -> bytes:
        return orjson.dumps({"created": self.created})

    @classmethod
    def decode(cls, name: str, data: bytes) -> BucketMeta:
        return cls(name, float(orjson.loads(data)["created"]))


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """One object's metadata. `blob` names its bytes on disk (blobs.py); `etag` is S3's, without quotes."""

    bucket: str
    key: str
    #: The blob holding the bytes; "" for a small object whose bytes are in the store (see `inline`).
    blob: str
    size: int
    etag: str
    modified: float
    #: Per key, growing with every change of the key (S3's `sequencer`, as 16 hex digits).
    sequencer: str
    content_type: str = "binary/octet-stream"
    #: Content-Encoding, Content-Disposition, Content-Language, Cache-Control, Expires: as sent.
    headers: dict[str, str] = field(default_factory=dict)
    #: `x-amz-meta-*` headers, names lowercase without the prefix.
    metadata: dict[str, str] = field(default_factory=dict)
    #: `crc32`, `crc32c`, `sha1`, `sha256`: base64, as S3 gives them back (checked when they were sent).
    checksums: dict[str, str] = field(default_factory=dict)
    #: The parts' sizes of an object made by a multipart upload (empty for a single PUT).
    parts: tuple[int, ...] = ()
    #: The key-value record's version this was read at (0: not read from the store): for compare-and-set.
    version: int = 0

    @property
    def inline(self) -> bool:
        """Whether the bytes are kept in the store beside the metadata (a small object) rather than in a blob."""
        return not self.blob

    def encode(self) -> bytes:
        document: dict[str, Any] = {
            "blob": self.blob,
            "size": self.size,
            "etag": self.etag,
            "modified": self.modified,
            "sequencer": self.sequencer,
            "type": self.content_type,
        }
        if self.headers:
            document["headers"] = self.headers
        if self.metadata:
            document["meta"] = self.metadata
        if self.checksums:
            document["sums"] = self.checksums
        if self.parts:
            document["parts"] = list(self.parts)
        return orjson.dumps(document)

    @classmethod
    def decode(cls, bucket: str, key: str, data: bytes, version: int = 0) -> ObjectMeta:
        d = orjson.loads(data)
        return cls(
            bucket,
            key,
            d["blob"],
            int(d["size"]),
            d["etag"],
            float(d["modified"]),
            d["sequencer"],
            d.get("type", "binary/octet-stream"),
            dict(d.get("headers", {})),
            dict(d.get("meta", {})),
            dict(d.get("sums", {})),
            tuple(d.get("parts", ())),
            version,
        )


@dataclass(frozen=True, slots=True)
class UploadMeta:
    """A multipart upload in progress: where it will land and the object settings it was started with."""

    bucket: str
    key: str
    upload_id: str
    started: float
    content_type: str = "binary/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    #: The checksum algorithm the client asked for at the start (`x-amz-checksum-algorithm`), lowercase, or "".
    checksum: str = ""

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "key": self.key,
                "started": self.started,
                "type": self.content_type,
                "headers": self.headers,
                "meta": self.metadata,
                "checksum": self.checksum,
            }
        )

    @classmethod
    def decode(cls, bucket: str, upload_id: str, data: bytes) -> UploadMeta:
        d = orjson.loads(data)
        return cls(
            bucket,
            d["key"],
            upload_id,
            float(d["started"]),
            d["type"],
            dict(d["headers"]),
            dict(d["meta"]),
            d.get("checksum", ""),
        )


@dataclass(frozen=True, slots=True)
class PartMeta:
    number: int
    blob: str
    size: int
    etag: str
    modified: float
    checksums: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps(
            {"blob": self.blob, "size": self.size, "etag": self.etag, "modified": self.modified, "sums": self.checksums}
        )

    @classmethod
    def decode(cls, number: int, data: bytes) -> PartMeta:
        d = orjson.loads(data)
        return cls(number, d["blob"], int(d["size"]), d["etag"], float(d["modified"]), dict(d.get("sums", {})))
