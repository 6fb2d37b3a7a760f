"""Run the benchmarks and print a Markdown report for docs/benchmarks.md.

    scripts/bench                 # every benchmark
    scripts/bench patterns store  # some of them
    scripts/bench --list

Each benchmark is a module `benchmarks/bench_<name>.py` with a function
`main() -> str` (or `async def main() -> str`) that returns its Markdown
section. The machine is shared and noisy: benchmarks run the systems they
compare in turns, report medians with their range, and the 1-minute load
average beside every run (benchmarks/measure.py); the report starts with
the command, the machine, the date and the load average, and each section
ends with how long it took.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import inspect
import os
import platform
import sys
import time
from pathlib import Path

from benchmarks.measure import load_average


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores ({cpu}){memory}, {system}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    names = available()
    if args.list:
        print("\n".join(names))
        return 0
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    chosen = args.names or names
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["scripts/bench", *args.names])
    print(f"Measured {now} on {machine()} with `{command}`; load average (1 min) at the start: {load_average():.2f}.")
    for name in chosen:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"\n<!-- benchmarks/bench_{name}.py -->", file=sys.stderr)
        began, load = time.monotonic(), load_average()
        result = module.main()
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        print()
        print(str(result).rstrip())
        print(
            f"\n_`scripts/bench {name}`: {time.monotonic() - began:.0f} s; load average {load:.2f} at its start,"
            f" {load_average():.2f} at its end._"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
