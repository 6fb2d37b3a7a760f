"""Bundles on the server: refusing hostile ones, unpacking and verifying good ones, and the event loop meanwhile.

- Refusal: the bundle of 25,000 empty files (some 200 kB) that stalled every app for 12 to 18 s when it
  was unpacked on the event loop, against the default limits (refused at member 10,001).
- Unpack and verify: a good bundle of 200 and of 5,000 source files of 2 kB (check pass, write pass,
  one sync; then the tree compared with its archive, as before each load).
- The event loop while a slow refusal runs in a bundle thread (limits lifted so that 60,000 members are
  read before a link at the end is refused): how late a 1 ms timer fires, the cost other apps' requests
  see from sharing the GIL with that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import random
import statistics
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from triggerfish.deploy.bundle import BundleLimits
from triggerfish.deploy.bundles import BundleStore
from triggerfish.errors import BundleError

REPEATS = 5
SEED = 20261206


def _archive(members: list[tuple[str, bytes]], *, link_at_end: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as out:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            out.addfile(info, io.BytesIO(content))
        if link_at_end:
            info = tarfile.TarInfo("late")
            info.type = tarfile.SYMTYPE
            info.linkname = "/"
            out.addfile(info)
    return buffer.getvalue()


def _source_files(count: int) -> list[tuple[str, bytes]]:
    """`count` files of 2 kB of code-like text that compresses as code does (about 3 times)."""
    rng = random.Random(SEED)
    files = []
    for index in range(count):
        lines = (
            f"value_{rng.randrange(10**6)} = compute({rng.random():.6f}, '{rng.randrange(10**4)}')\n" for _ in range(64)
        )
        files.append((f"pkg{index // 100}/mod{index}.py", "".join(lines).encode()[:2048]))
    return files


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _refusal_seconds(data: bytes, limits: BundleLimits) -> float:
    timings = []
    with tempfile.TemporaryDirectory() as directory:
        store = BundleStore(Path(directory), limits=limits)
        for _ in range(REPEATS):
            began = time.perf_counter()
            try:
                store.put("bench", _sha(data), data)
            except BundleError:
                timings.append(time.perf_counter() - began)
            else:
                raise AssertionError("the hostile bundle was accepted")
    return statistics.median(timings)


def _unpack_and_verify(data: bytes) -> tuple[float, float]:
    unpacks, verifies = [], []
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as directory:
            store = BundleStore(Path(directory), limits=BundleLimits(max_files=100_000))
            began = time.perf_counter()
            store.put("bench", _sha(data), data)
            unpacks.append(time.perf_counter() - began)
            began = time.perf_counter()
            store.verify("bench", _sha(data))
            verifies.append(time.perf_counter() - began)
            store.remove_app("bench")
    return statistics.median(unpacks), statistics.median(verifies)


async def _loop_lag_during_refusal(data: bytes) -> tuple[float, float, float]:
    """(seconds the refusal took, median and worst lateness of a 1 ms timer meanwhile)."""
    limits = BundleLimits(max_files=1_000_000, max_ratio=1_000_000)
    with tempfile.TemporaryDirectory() as directory, ThreadPoolExecutor(1) as thread:
        store = BundleStore(Path(directory), limits=limits)
        loop = asyncio.get_running_loop()
        began = time.perf_counter()
        refusal = loop.run_in_executor(thread, store.put, "bench", _sha(data), data)
        lateness: list[float] = []
        while not refusal.done():
            tick = time.perf_counter()
            await asyncio.sleep(0.001)
            lateness.append(time.perf_counter() - tick - 0.001)
        took = time.perf_counter() - began
        with contextlib.suppress(BundleError):  # refused, as it should be
            await refusal
    return took, statistics.median(lateness), max(lateness)


def main() -> str:
    bomb = _archive([(f"f{i}", b"") for i in range(25_000)])
    refused = _refusal_seconds(bomb, BundleLimits())
    rows = []
    for count in (200, 5_000):
        data = _archive(_source_files(count))
        unpack, verify = _unpack_and_verify(data)
        rows.append(
            f"| {count:,} files of 2 kB ({len(data) / 1024:,.0f} kB gzipped) | {unpack * 1000:,.0f} ms"
            f" | {verify * 1000:,.0f} ms |"
        )
    slow = _archive([(f"f{i}", b"") for i in range(60_000)], link_at_end=True)
    took, median_lag, worst_lag = asyncio.run(_loop_lag_during_refusal(slow))
    return "\n".join(
        [
            "## Bundles",
            "",
            f"The bundle of 25,000 empty files ({len(bomb) / 1024:,.0f} kB) is refused in {refused * 1000:,.0f} ms"
            " (median of 5) against the default limits, with nothing written; on the event loop it used to"
            " stall every app for 12 to 18 s.",
            "",
            "| good bundle | check and unpack (read-only, one sync) | verify against its archive |",
            "|---|---|---|",
            *rows,
            "",
            f"While a slow refusal ran in a bundle thread ({took:.1f} s: 60,000 members, limits lifted), a 1 ms"
            f" timer on the event loop fired {median_lag * 1000:.1f} ms late at the median and"
            f" {worst_lag * 1000:.0f} ms at worst: the price of sharing the GIL, paid by other apps' requests.",
        ]
    )


if __name__ == "__main__":
    print(main())
