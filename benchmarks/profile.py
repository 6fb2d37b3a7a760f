"""Where the platform's process spends its time under a benchmark's load: py-spy samples, summed by function.

    python -m benchmarks.profile http   [--seconds 10] [--loop asyncio|uvloop]
    python -m benchmarks.profile events [--seconds 10] [--loop asyncio|uvloop] [--store sqlite|postgresql] [--gil]
    python -m benchmarks.profile fanout [--seconds 10] [--loop asyncio|uvloop] [--store sqlite|postgresql] [--gil]
    python -m benchmarks.profile async  [--seconds 10] [--loop asyncio|uvloop] [--in-flight 16] [--batch 50]

Starts the platform as the benchmark does (`triggerfish dev` through the
launcher), drives it as the benchmark does (wrk over 32 connections; the
event load generator at 1,000 events/s; for the fan-out, its eight
connections posting ten `OrderPlaced` per request as fast as answered, to
four functions; four producer processes of async invocations), and samples
the platform's process with py-spy (every thread, idle time left out) for
SECONDS. Prints Markdown: the functions with the most samples on the stack
(inclusive) and at the top of it (self), as shares of all samples. Not part
of `scripts/bench`: a diagnostic for a figure that misses its target
(`pip install py-spy`; root or ptrace rights needed).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import async_systems, postgres
from benchmarks.bench_async import produce
from benchmarks.processes import Child, free_port, launcher, wait_http
from benchmarks.wrk import run_wrk

APPS = Path(__file__).resolve().parent / "apps"
TOP = 20
RATE = 250
_LINE = re.compile(r"\s*\(([^)]*?)(?::\d+)?\)$")


@dataclass
class ThreadProfile:
    """One thread's samples: how many, and per function on the stack (inclusive) and at its top (self)."""

    samples: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)


def summarize(raw: str) -> dict[str, ThreadProfile]:
    """py-spy's raw output (`thread (TID): NAME;frame;...;frame COUNT`, outermost first), by thread name."""
    threads: dict[str, ThreadProfile] = {}
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        first, *rest = stack.split(";")
        # "thread (4727): triggerfish-store-writer:/path/store.db": the name, without its id or store path.
        name = first.partition(": ")[2].split(":", 1)[0] if first.startswith("thread (") else "?"
        profile = threads.setdefault(name, ThreadProfile())
        profile.samples += count
        frames = [_frame(f) for f in rest]
        for frame in set(frames):
            profile.inclusive[frame] += count
        if frames:
            profile.own[frames[-1]] += count
    return threads


def _frame(text: str) -> str:
    """`name (path/to/file.py:12)` as `name (file.py)`, paths cut to the package."""
    found = _LINE.search(text)
    if not found:
        return text.strip()
    name = text[: found.start()].strip()
    path = found.group(1)
    for marker in ("/triggerfish/", "site-packages/", "/python3.11/", "/python3.12/"):
        if marker in path:
            path = ("triggerfish/" if marker == "/triggerfish/" else "") + path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def table(counts: Counter[str], total: int, title: str, top: int = TOP) -> list[str]:
    rows = [f"| {title} | share of the thread's samples |", "|---|---:|"]
    # Frames on (nearly) every stack are the thread's outer frames: they say nothing.
    shown = [(frame, count) for frame, count in counts.most_common() if count < 0.98 * total][:top]
    rows += [f"| `{frame}` | {count / total:.1%} |" for frame, count in shown]
    return rows


def record(pid: int, seconds: float, out: Path, gil: bool = False) -> str:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    command = [spy, "record", "--pid", str(pid), "--duration", str(round(seconds)), "--rate", str(RATE)]
    if gil:
        command.append("--gil")
    subprocess.run([*command, "--format", "raw", "--threads", "--output", str(out)], check=True, capture_output=True)
    return out.read_text()


def profile(
    kind: str,
    seconds: float,
    loop: str,
    store: str | None = None,
    in_flight: int = 1,
    batch: int = 1,
    gil: bool = False,
) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        if kind == "async":
            with async_systems.triggerfish(work, loop=loop) as target:
                produce(target, 40, 1, first=0, already=0, log=work / "producers.log")
                # about what it manages: the load outlasts the sampling
                count = round((600 if in_flight == batch == 1 else 2500) * (seconds + 2))

                def tasks() -> None:
                    produce(
                        target,
                        count,
                        4,
                        first=40,
                        already=40,
                        log=work / "producers.log",
                        in_flight=in_flight,
                        batch=batch,
                    )

                driver = threading.Thread(target=tasks)
                driver.start()
                raw = record(target.pid, seconds, work / "profile.txt", gil)
                driver.join()
            return _report(kind, loop, seconds, raw, gil)
        app = {"http": "http_app.py", "events": "events_latency_app.py", "fanout": "events_fanout_app.py"}[kind]
        if store == "postgresql":
            url = stack.enter_context(postgres.fresh_schema())
            command = launcher(loop, "platform", str(APPS / app), "--port", str(port), "--store", url)
        else:
            command = launcher(
                loop, "triggerfish", "dev", str(APPS / app), "--port", str(port), "--no-reload", "--quiet"
            )
        with Child([*command, "--data-dir", str(work / "data")], log=work / "dev.log") as child:
            wait_http(f"{base}/-/health", child)
            if kind == "http":
                run_wrk(f"{base}/hello?n=7", connections=32, seconds=2)

                def load() -> None:
                    run_wrk(f"{base}/hello?n=7", connections=32, seconds=seconds + 4)

            elif kind == "fanout":
                # More events than it routes in the time (about 1,000/s on a quiet machine): the load outlasts the
                # sampling. A first burst forks the workers.
                burst = [sys.executable, "-m", "benchmarks.loadgen_events", "burst", f"{base}/-/events"]
                warm = ["--events", "200", "--prefix", "w", "--out", str(work / "warm.json")]
                subprocess.run([*burst, *warm], check=True, capture_output=True)
                events = [*burst, "--events", str(round(1000 * (seconds + 4))), "--prefix", "p", "--out"]
            else:
                events = [sys.executable, "-m", "benchmarks.loadgen_events", "rate", f"{base}/-/events"]
                events += ["--rate", "1000", "--seconds", str(seconds + 4), "--prefix", "p", "--out"]

            if kind != "http":

                def load() -> None:
                    subprocess.run([*events, str(work / "sent.json")], check=True, capture_output=True)

            driver = threading.Thread(target=load)
            driver.start()
            raw = record(child.pid, seconds, work / "profile.txt", gil)
            driver.join()
    return _report(kind, loop, seconds, raw, gil)


def _report(kind: str, loop: str, seconds: float, raw: str, gil: bool = False) -> str:
    threads = summarize(raw)
    possible = seconds * RATE
    busy = ", ".join(f"{name} {p.samples / possible:.0%}" for name, p in sorted(threads.items()))
    lines = [
        f"### Profile: {kind}, {loop}",
        "",
        f"py-spy, {seconds:g} s at {RATE} samples/s of every thread of the platform's process. Share of the time"
        + (
            f" each thread was seen holding the GIL (`--gil`): {busy}."
            if gil
            else f" each thread was seen running (not idle in a system call py-spy knows as waiting): {busy}."
        ),
    ]
    others = [(name, 8) for name in sorted(threads) if name not in ("MainThread", "triggerfish-store-writer")]
    for name, top in (("MainThread", TOP), ("triggerfish-store-writer", 8), *others):
        if name in threads:
            profile = threads[name]
            lines += ["", f"{name}:", "", *table(profile.inclusive, profile.samples, "on the stack (inclusive)", top)]
            lines += ["", *table(profile.own, profile.samples, "at the top (self)", top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("http", "events", "fanout", "async"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--in-flight", type=int, default=1, help="async: calls each producer keeps in flight")
    parser.add_argument("--batch", type=int, default=1, help="async: tasks per call (Triggerfish's invoke-batch)")
    parser.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL (py-spy --gil)")
    args = parser.parse_args(argv)
    print(profile(args.kind, args.seconds, args.loop, args.store, args.in_flight, args.batch, args.gil))


if __name__ == "__main__":
    main()
