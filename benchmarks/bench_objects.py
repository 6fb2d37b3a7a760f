"""Objects: PUT and GET of 1 KB and 10 MB objects per second, Triggerfish's S3 API on SQLite and on PostgreSQL
beside moto's server mode, and the platform's memory during one large upload on each store.

    scripts/bench objects
    python -m benchmarks.run objects

Triggerfish runs as `triggerfish dev` composes it (`python -m benchmarks.launch platform`, SQLite, every write
fsynced with its metadata committed), and again on PostgreSQL (a fresh schema on TRIGGERFISH_BENCH_POSTGRES: the
objects' bytes in the database, in chunk rows, as on a cluster). moto (`moto_server`, the common local S3
emulator, which keeps objects in memory and writes nothing to disk) runs beside them. All get the same requests
from THREADS client threads over keep-alive connections: path-style, with an `UNSIGNED-PAYLOAD` SigV4 header none
checks (Triggerfish under `dev` takes any well-formed credentials, moto any), so the figures are the servers'.
The systems take turns, ROUNDS rounds, SECONDS s per workload; medians with the range.

Then one PUT of LARGE_MB MiB (2 GiB by default) to each Triggerfish, streamed from the client in 1 MiB pieces,
while the platform process's RSS is sampled every 50 ms: it must stay flat, since bodies stream to their blobs.
"""

from __future__ import annotations

import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from benchmarks import postgres
from benchmarks.measure import Runs, interleave, loads, spread
from benchmarks.processes import Child, launcher, rss_mb, serve_on_free_port

ROUNDS = int(os.environ.get("TRIGGERFISH_BENCH_OBJECTS_ROUNDS", "3"))
SECONDS = float(os.environ.get("TRIGGERFISH_BENCH_OBJECTS_SECONDS", "4"))
LARGE_MB = int(os.environ.get("TRIGGERFISH_BENCH_OBJECTS_LARGE_MB", "2048"))
THREADS = 32
SMALL, BIG = 1000, 10 * 1000 * 1000
TARGET_RATIO = 3.0
APP = Path(__file__).resolve().parent / "apps" / "objects_app.py"
AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request,"
    " SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + "0" * 64
)


@dataclass(frozen=True, slots=True)
class Target:
    label: str
    port: int
    #: The path prefix of the S3 API: `/-/aws` for Triggerfish, none for moto.
    prefix: str


@dataclass(frozen=True, slots=True)
class Rates:
    put_small: float
    get_small: float
    put_big: float
    get_big: float


def headers(length: int | None = None) -> dict[str, str]:
    found = {
        "Authorization": AUTHORIZATION,
        "x-amz-date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
    }
    if length is not None:
        found["Content-Length"] = str(length)
    return found


def request(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> bytes:
    connection.request(method, path, body=body, headers=headers(None if body is None else len(body)))
    answer = connection.getresponse()
    data = answer.read()
    if answer.status >= 300:
        raise RuntimeError(f"{method} {path} answered {answer.status}: {data[:300]!r}")
    return data


def rate(target: Target, method: str, size: int, seconds: float, threads: int) -> float:
    """Requests per second of `threads` clients each doing `method` on objects of `size` bytes for `seconds`."""
    body = os.urandom(size)
    stored = 50 if size < 10**6 else 2  # objects per client the GETs read
    done = [0] * threads
    stop = 0.0
    errors: list[BaseException] = []

    def client(n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
        try:
            i = 0
            while time.monotonic() < stop:
                key = f"{target.prefix}/bench/{size}/{n}/{i % stored if method == 'GET' else i}"
                request(connection, method, key, body if method == "PUT" else None)
                done[n] += 1
                i += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    if method == "GET":  # what the GETs read
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
        for n in range(threads):
            for i in range(stored):
                request(connection, "PUT", f"{target.prefix}/bench/{size}/{n}/{i}", body)
        connection.close()
    began = time.monotonic()
    stop = began + seconds
    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return sum(done) / (time.monotonic() - began)


def measure(target: Target) -> Rates:
    return Rates(
        put_small=rate(target, "PUT", SMALL, SECONDS, THREADS),
        get_small=rate(target, "GET", SMALL, SECONDS, THREADS),
        put_big=rate(target, "PUT", BIG, SECONDS, 4),
        get_big=rate(target, "GET", BIG, SECONDS, 4),
    )


def large_upload(target: Target, pid: int, megabytes: int) -> tuple[float, float, float]:
    """(RSS before, peak RSS during, seconds) of one streamed PUT of `megabytes` MiB."""
    piece = os.urandom(1024 * 1024)
    peak = [rss_mb(pid)]
    before = peak[0]
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.05)

    def pieces() -> Iterator[bytes]:
        for _ in range(megabytes):
            yield piece

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=600)
    try:
        connection.request(
            "PUT", f"{target.prefix}/bench/large.bin", body=pieces(), headers=headers(megabytes * 1024 * 1024)
        )
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"the large PUT answered {answer.status}")
    finally:
        connection.close()
        running.clear()
        sampler.join()
    return before, peak[0], time.monotonic() - began


def start_triggerfish(work: Path, store: str | None = None) -> tuple[Child, Target]:
    name = "triggerfish" if store is None else "triggerfish-pg"
    chosen = [] if store is None else ["--store", store]
    child, port = serve_on_free_port(
        lambda port: launcher(
            "asyncio", "platform", str(APP), "--port", str(port), "--data-dir", str(work / name), *chosen
        ),
        lambda port: f"http://127.0.0.1:{port}/-/health",
        log=work / f"{name}.log",
    )
    return child, Target("Triggerfish (SQLite, fsync)" if store is None else "Triggerfish (PostgreSQL)", port, "/-/aws")


def start_moto(work: Path) -> tuple[Child, Target]:
    child, port = serve_on_free_port(
        lambda port: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        lambda port: f"http://127.0.0.1:{port}/moto-api/data.json",
        log=work / "moto.log",
    )
    return child, Target("moto server (in memory)", port, "")


def main() -> str:
    with tempfile.TemporaryDirectory(prefix="bench-objects-") as directory, ExitStack() as schemas:
        work = Path(directory)
        starters: dict[str, Callable[[Path], tuple[Child, Target]]] = {"triggerfish": start_triggerfish}
        no_postgres = postgres.unavailable()
        if no_postgres is None:
            url = schemas.enter_context(postgres.fresh_schema())
            starters["triggerfish-pg"] = lambda work: start_triggerfish(work, url)
        try:
            import moto  # noqa: F401
        except ImportError:
            missing = "moto is not installed (pip install 'triggerfish[benchmark]')"
        else:
            missing = ""
            starters["moto"] = start_moto
        started = {name: start(work) for name, start in starters.items()}
        try:
            for _, target in started.values():
                connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
                try:
                    request(connection, "PUT", f"{target.prefix}/bench")
                except RuntimeError:
                    pass  # Triggerfish: made already? no bucket is declared, so this is its first
                finally:
                    connection.close()
            systems = {name: (lambda t=target: measure(t)) for name, (_, target) in started.items()}
            measured = interleave(systems, ROUNDS)
            large = {
                target.label: large_upload(target, child.pid, LARGE_MB)
                for name, (child, target) in started.items()
                if name.startswith("triggerfish")
            }
        finally:
            for child, _ in started.values():
                child.stop()
    return report(measured, {n: t for n, (_, t) in started.items()}, large, missing, no_postgres)


def report(
    measured: dict[str, Runs[Rates]],
    targets: dict[str, Target],
    large: dict[str, tuple[float, float, float]],
    missing: str,
    no_postgres: str | None = None,
) -> str:
    lines = [
        "## Objects: S3 PUT and GET, Triggerfish and moto",
        "",
        f"{THREADS} client threads (4 for 10 MB), {SECONDS:g} s per workload, {ROUNDS} rounds in turns; requests per"
        " second, median (range). Triggerfish fsyncs each object and commits its metadata to SQLite before it"
        " answers (on PostgreSQL: the bytes in chunk rows, committed before the metadata); moto keeps objects in"
        " memory.",
        "",
        "| system | PUT 1 KB/s | GET 1 KB/s | PUT 10 MB/s | GET 10 MB/s | load average |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in measured.items():
        if runs.error is not None:
            lines.append(f"| {targets[name].label} | failed: {runs.error} | | | | |")
            continue
        cells = [
            spread([float(getattr(run.result, f)) for run in runs.runs], 1)
            for f in ("put_small", "get_small", "put_big", "get_big")
        ]
        lines.append(f"| {targets[name].label} | {' | '.join(cells)} | {loads(runs)} |")
    if no_postgres is not None:
        lines.append(f"\nTriggerfish on PostgreSQL was not measured: {no_postgres}.")
    elif not measured["triggerfish"].error and not measured["triggerfish-pg"].error:
        ratios = []
        for field in ("put_small", "get_small", "put_big", "get_big"):
            a = statistics.median(float(getattr(run.result, field)) for run in measured["triggerfish-pg"].runs)
            b = statistics.median(float(getattr(run.result, field)) for run in measured["triggerfish"].runs)
            ratios.append(f"{field.replace('_small', ' 1 KB').replace('_big', ' 10 MB')} {a / b:.2f}x")
        lines.append(f"\nTriggerfish on PostgreSQL / on SQLite: {', '.join(ratios)}.")
    if missing:
        lines.append(f"\nmoto was not measured: {missing}.")
    elif "moto" in measured and not measured["moto"].error and not measured["triggerfish"].error:
        ours, theirs = measured["triggerfish"], measured["moto"]
        ratios = []
        for field in ("put_small", "get_small"):
            a = statistics.median(float(getattr(run.result, field)) for run in ours.runs)
            b = statistics.median(float(getattr(run.result, field)) for run in theirs.runs)
            ratios.append(f"{field.replace('_small', '')} {a / b:.1f}x")
        verdict = "met" if all(float(r.split()[1][:-1]) >= TARGET_RATIO for r in ratios) else "not met"
        lines.append(f"\nSmall objects, Triggerfish / moto: {', '.join(ratios)} (target {TARGET_RATIO:g}x: {verdict}).")
    lines.append("")
    for label, (before, peak, seconds) in large.items():
        lines.append(
            f"- {label}: one streamed PUT of {LARGE_MB:,} MiB, the platform's RSS {before:.0f} MiB before,"
            f" {peak:.0f} MiB at its peak (+{peak - before:.0f} MiB), {seconds:.1f} s ({LARGE_MB / seconds:.0f} MiB/s)."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
