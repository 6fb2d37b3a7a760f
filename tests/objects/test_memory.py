"""A large upload streams to disk: the platform's memory stays flat while 256 MiB arrive in one PUT.

(benchmarks/bench_objects.py measures the same with 2 GiB.)"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.objects.conftest import s3
from tests.objects.test_crash import child_platform

MIB = 1024 * 1024
SIZE_MIB = 256


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"process {pid} reports no VmRSS")


def test_a_large_put_does_not_grow_the_platforms_memory(tmp_path: Path) -> None:
    with child_platform(tmp_path) as (process, url):
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
        finally:
            connection.close()
            sending.clear()
            sampler.join()
        assert answer.status == 200
        assert client.head_object(Bucket="uploads", Key="big.bin")["ContentLength"] == SIZE_MIB * MIB
        # bodies stream through in pieces of about 1 MiB: a few of them in flight, never the whole object
        assert peak[0] - before < 48, f"RSS grew from {before:.0f} to {peak[0]:.0f} MiB during a {SIZE_MIB} MiB PUT"
