"""Instructions per event of `RuleSet.matches`, counted by callgrind: a figure the machine's load does not move.

    python -m benchmarks.patterns_instructions [--events 2000] [--sizes 10,10000]

For each vocabulary and size of `benchmarks.bench_patterns`, builds the same
workload under valgrind with instrumentation off, matches every event once
(which compiles the rules added last and fills the memo tables, as the timed
runs of the benchmark find them), collects garbage, then turns instrumentation on, matches
EVENTS events of the second pass (new events; spread over the rule sets of ten
as the benchmark does) and
leaves without the interpreter's teardown. Prints a Markdown table:
instructions per event, and the ratio of each size to ten rules. Slow (the
10,000-rule workloads take minutes to build under valgrind); not part of
`scripts/bench`. Needs valgrind (Debian: apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_patterns import SIZES, VOCABULARIES, Workload


def child(vocabulary: str, size: int, events: int, signals: Path) -> None:
    """Build, warm, wait for instrumentation, match `events` events, leave at once."""
    work = Workload(vocabulary, size, passes=3)
    # The first pass ends by compiling in the rules added last (a large set compiles once the set is quiet),
    # which starts the memo tables afresh; the second fills them, as the timed passes of the benchmark find them.
    work.run(0)
    work.run(1)
    # The compile leaves young objects; their collection is not matching.
    gc.collect()
    share = max(1, events // len(work.parts))
    slices = [(ruleset, passes[2][:share]) for ruleset, _, passes in work.parts]
    (signals / "count").write_text(str(sum(len(part) for _, part in slices)))
    (signals / "ready").write_text(str(os.getpid()))
    while not (signals / "go").exists():
        time.sleep(0.05)
    for ruleset, part in slices:
        for event in part:
            ruleset.matches(event)
    os._exit(0)  # the teardown of the rule sets would be counted too


def count(vocabulary: str, size: int, events: int) -> float:
    """Instructions per event of one workload."""
    with tempfile.TemporaryDirectory(prefix="tf-callgrind-") as scratch:
        signals, out = Path(scratch), Path(scratch) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.patterns_instructions",
            "--child",
            vocabulary,
            str(size),
            str(events),
            scratch,
        ]
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        while not (signals / "ready").exists():
            if process.poll() is not None:
                raise SystemExit(f"the callgrind run of {vocabulary} {size} ended early ({process.returncode})")
            time.sleep(0.2)
        subprocess.run(["callgrind_control", "-i", "on", str(process.pid)], check=True, capture_output=True)
        (signals / "go").touch()
        process.wait()
        totals = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)
        if totals is None:
            raise SystemExit(f"no totals in {out}")
        return int(totals.group(1)) / int((signals / "count").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--sizes", default=",".join(str(size) for size in (SIZES[0], SIZES[-1])))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        vocabulary, size, events, signals = arguments.child
        child(vocabulary, int(size), int(events), Path(signals))
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    sizes = [int(size) for size in arguments.sizes.split(",")]
    print("| Rule set | instructions per event | against 10 rules |")
    print("|---|---:|---:|")
    for vocabulary in VOCABULARIES:
        base = None
        for size in sizes:
            per_event = count(vocabulary, size, arguments.events)
            base = base or per_event
            print(f"| {vocabulary}, {size:,} rules | {per_event:,.0f} | {per_event / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
