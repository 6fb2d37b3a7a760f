"""A large upload streams to its blob: the platform's memory stays flat while 256 MiB arrive in one PUT, into
files (SQLite) or chunk rows (PostgreSQL), and while they are read back.

(benchmarks/bench_objects.py measures the same with 2 GiB.)"""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.objects.conftest import s3
from tests.objects.test_crash import child_platform
from tests.services import POSTGRES_URL, drop_schema, require_postgres

MIB = 1024 * 1024
SIZE_MIB = 256


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"process {pid} reports no VmRSS")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    require_postgres()
    schema = f"t_blobs11_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{POSTGRES_URL}?schema={schema}&pool_size=4"
    finally:
        asyncio.run(drop_schema(schema))


def test_a_large_put_does_not_grow_the_platforms_memory(tmp_path: Path, store_url: str | None) -> None:
    with child_platform(tmp_path, store_url) as (process, url):
        client = s3(url)
        put = client.generate_presigned_url(
            "put_object", Params={"Bucket": "uploads", "Key": "big.bin"}, ExpiresIn=600
        ).split("//", 1)[1]
        address, _, path = put.partition("/")
        host, _, port = address.partition(":")
        before = rss_mib(process.pid)
        peak = [before]
        sending = threading.Event()
        sending.set()

        def sample() -> None:
            while sending.is_set():
                peak[0] = max(peak[0], rss_mib(process.pid))
                time.sleep(0.02)  # a sampling period, not a wait for a condition

        def pieces() -> Iterator[bytes]:
            piece = b"\x5a" * MIB
            for _ in range(SIZE_MIB):
                yield piece

        sampler = threading.Thread(target=sample)
        sampler.start()
        connection = http.client.HTTPConnection(host, int(port), timeout=300)
        try:
            connection.request("PUT", f"/{path}", body=pieces(), headers={"Content-Length": str(SIZE_MIB * MIB)})
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200
            # and read back, streamed: the platform holds a piece at a time going out too
            got = client.get_object(Bucket="uploads", Key="big.bin")["Body"]
            received = 0
            while piece := got.read(MIB):
                assert piece == b"\x5a" * len(piece)
                received += len(piece)
        finally:
            connection.close()
            sending.clear()
            sampler.join()
        assert received == SIZE_MIB * MIB
        # bodies stream through in pieces of about 1 MiB: a few of them in flight, never the whole object
        assert peak[0] - before < 48, f"RSS {before:.0f} -> {peak[0]:.0f} MiB in a {SIZE_MIB} MiB PUT and GET"
