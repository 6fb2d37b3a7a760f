"""Instructions per event of `RuleSet.matches`, counted by callgrind: a figure the machine's load does not move.

    python -m benchmarks.patterns_instructions [--events 2000] [--sizes 10,10000] [--cache-sim]

For each vocabulary and size of `benchmarks.bench_patterns`, builds the same
workload under valgrind with instrumentation off, matches every event once
(which compiles the rules added last and fills the memo tables, as the timed
runs of the benchmark find them), collects garbage, then turns instrumentation on, matches
EVENTS events of the second pass (new events; spread over the rule sets of ten
as the benchmark does) and
leaves without the interpreter's teardown. Prints a Markdown table:
instructions per event, and the ratio of each size to ten rules; with `--cache-sim`, also the simulated
last-level cache misses per event (data reads and writes; the last level set to a 1 MiB L2, as the
earlier host had, so counts stay comparable across hosts). Slow (the
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


#: callgrind's cache model when misses are counted: the last level is a 1 MiB, 16-way L2 of 64-byte lines.
CACHE_SIM = ["--cache-sim=yes", "--LL=1048576,16,64"]


def count(
    vocabulary: str, size: int, events: int, *, cache_sim: bool = False, tree: Path | None = None
) -> tuple[float, float | None]:
    """Instructions per event of one workload, and (with `cache_sim`) last-level data misses per event.

    `tree` runs another source tree's code (its `triggerfish` and `benchmarks`), for before and after in one run.
    """
    with tempfile.TemporaryDirectory(prefix="tf-callgrind-") as scratch:
        signals, out = Path(scratch), Path(scratch) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            *(CACHE_SIM if cache_sim else []),
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
        # One hash seed: dict layouts, and so the cache misses counted, are the same from run to run.
        environment = {**os.environ, "PYTHONHASHSEED": "0"}
        if tree is not None:
            environment["PYTHONPATH"] = str(tree)
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL, cwd=tree, env=environment)
        while not (signals / "ready").exists():
            if process.poll() is not None:
                raise SystemExit(f"the callgrind run of {vocabulary} {size} ended early ({process.returncode})")
            time.sleep(0.2)
        subprocess.run(["callgrind_control", "-i", "on", str(process.pid)], check=True, capture_output=True)
        (signals / "go").touch()
        process.wait()
        text = out.read_text()
        totals = re.search(r"^totals: ([\d ]+)$", text, re.MULTILINE)
        if totals is None:
            raise SystemExit(f"no totals in {out}")
        matched = int((signals / "count").read_text())
        figures = dict(zip(_events_line(text), (int(n) for n in totals.group(1).split()), strict=False))
        misses = figures.get("DLmr", 0) + figures.get("DLmw", 0) if cache_sim else None
        return figures["Ir"] / matched, None if misses is None else misses / matched


def _events_line(text: str) -> list[str]:
    """The names of the counts on callgrind's `totals:` line, in order (Ir alone without the cache model)."""
    found = re.search(r"^events: (.+)$", text, re.MULTILINE)
    return found.group(1).split() if found else ["Ir"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--sizes", default=",".join(str(size) for size in (SIZES[0], SIZES[-1])))
    parser.add_argument("--cache-sim", action="store_true", help="also count simulated last-level data misses")
    parser.add_argument(
        "--tree", type=Path, action="append", help="count this source tree's code (repeatable; default: this one)"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        vocabulary, size, events, signals = arguments.child
        child(vocabulary, int(size), int(events), Path(signals))
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    sizes = [int(size) for size in arguments.sizes.split(",")]
    trees: list[Path | None] = [tree.resolve() for tree in arguments.tree] if arguments.tree else [None]
    misses_column = " LL misses per event |" if arguments.cache_sim else ""
    print(f"| Tree | Rule set | instructions per event | against 10 rules |{misses_column}")
    print("|---|---|---:|---:|" + ("---:|" if arguments.cache_sim else ""))
    for vocabulary in VOCABULARIES:
        for tree in trees:
            base = None
            for size in sizes:
                per_event, misses = count(vocabulary, size, arguments.events, cache_sim=arguments.cache_sim, tree=tree)
                base = base or per_event
                missed = f" {misses:.1f} |" if misses is not None else ""
                figures = f"{per_event:,.0f} | {per_event / base:.2f}x |{missed}"
                print(f"| {tree or '.'} | {vocabulary}, {size:,} rules | {figures}", flush=True)


if __name__ == "__main__":
    main()
