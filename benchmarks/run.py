"""Run the benchmarks and print a Markdown report for docs/benchmarks.md.

    scripts/bench                 # every benchmark
    scripts/bench patterns store  # some of them
    scripts/bench --list

Each benchmark is a module `benchmarks/bench_<name>.py` with a function
`main() -> str` (or `async def main() -> str`) that returns its Markdown
section. The machine is shared and noisy: benchmarks report medians of
repeated runs and ratios against a peer measured in the same run.
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
from pathlib import Path


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
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    print(f"Measured {today} on {machine()} with `scripts/bench {' '.join(args.names)}`.".replace(" `", " `", 1))
    for name in chosen:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"\n<!-- benchmarks/bench_{name}.py -->", file=sys.stderr)
        result = module.main()
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        print()
        print(str(result).rstrip())
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
