"""The checksums S3 clients send with a body (`x-amz-checksum-*`), computed as the body streams.

    sums = Checksums.for_request({"crc32"})
    sums.update(chunk) ...
    sums.check({"crc32": "NSRBwg=="})        # raises ObjectError("BadDigest") on a mismatch

CRC32 is zlib's, CRC32C the `crc32c` library's (hardware-accelerated where the CPU has it),
SHA-1 and SHA-256 hashlib's. CRC64NVME (which needs the AWS CRT) is taken and kept but not checked.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Iterable, Mapping

from triggerfish.objects.model import ObjectError

#: The algorithms checked, by their header suffix.
CHECKED = ("crc32", "crc32c", "sha1", "sha256")
#: Taken and returned, not checked.
UNCHECKED = ("crc64nvme",)
ALGORITHMS = CHECKED + UNCHECKED


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


class _Crc32c:
    def __init__(self) -> None:
        # Imported at the first CRC32C body: every platform imports this module, and crc32c's import (which reads
        # its package metadata) costs tens of milliseconds in each process that starts one.
        import crc32c

        self.hash = crc32c.CRC32CHash()

    def update(self, data: bytes) -> None:
        self.hash.update(data)

    def digest(self) -> bytes:
        return bytes(self.hash.digest())


def _hasher(algorithm: str) -> _Crc32 | _Crc32c | hashlib._Hash:
    if algorithm == "crc32":
        return _Crc32()
    if algorithm == "crc32c":
        return _Crc32c()
    return hashlib.new(algorithm)


def checksum(algorithm: str, data: bytes) -> str:
    """The base64 checksum of `data` (one of CHECKED)."""
    hasher = _hasher(algorithm)
    hasher.update(data)
    return base64.b64encode(hasher.digest()).decode()


class Checksums:
    """Running checksums of a body for the algorithms a request names."""

    def __init__(self, algorithms: Iterable[str]) -> None:
        self._hashers = {a: _hasher(a) for a in algorithms if a in CHECKED}

    def update(self, data: bytes) -> None:
        for hasher in self._hashers.values():
            hasher.update(data)

    def values(self) -> dict[str, str]:
        return {a: base64.b64encode(h.digest()).decode() for a, h in self._hashers.items()}

    def check(self, sent: Mapping[str, str]) -> dict[str, str]:
        """Compare with the values the client sent (algorithm -> base64); the values to keep with the object."""
        computed = self.values()
        kept: dict[str, str] = {}
        for algorithm, value in sent.items():
            if algorithm in computed and computed[algorithm] != value.strip():
                raise ObjectError(
                    "BadDigest",
                    f"The {algorithm.upper()} you specified did not match the calculated checksum"
                    f" ({value.strip()} sent, {computed[algorithm]} computed over the body)",
                    status=400,
                )
            kept[algorithm] = value.strip()
        return kept


def composite(algorithm: str, part_values: list[str]) -> str | None:
    """A multipart object's checksum as S3 gives it: the checksum of the parts' checksums, then `-<parts>`."""
    if algorithm not in CHECKED or not part_values:
        return None
    joined = b"".join(base64.b64decode(v) for v in part_values)
    return f"{checksum(algorithm, joined)}-{len(part_values)}"
