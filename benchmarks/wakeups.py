"""What one wake-up of another process costs on this machine: a pipe round trip on one core and across two.

    python -m benchmarks.wakeups [--round-trips 50000] [--rounds 3]

Every invocation crosses several hand-offs between the platform's event loop,
the store's writer thread and a worker process, each a wake-up of a thread or
process that was asleep. On a virtual machine whose idle virtual CPU is halted,
waking a sleeper on the *other* core goes through the host (an interrupt
between virtual CPUs), which costs far more than the same wake-up on one core;
how much more is a property of the host and of how busy it is, not of our
code, and it moves the platform's rates without moving its instruction counts.
This measures it directly: two processes pass one byte back and forth over two
pipes, pinned to one core, then to two different cores. Prints Markdown with
the median of the rounds (microseconds per round trip, two wake-ups each).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from benchmarks.measure import EN_DASH


def round_trip_us(round_trips: int, cores: tuple[int, int]) -> float:
    """Microseconds per round trip of one byte between this process on `cores[0]` and a child on `cores[1]`."""
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's side, ended by os._exit
        os.sched_setaffinity(0, {cores[1]})
        for _ in range(round_trips):
            os.read(to_child, 1)
            os.write(from_child, b"x")
        os._exit(0)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cores[0]})
    try:
        started = time.perf_counter()
        for _ in range(round_trips):
            os.write(from_parent, b"x")
            os.read(to_parent, 1)
        elapsed = time.perf_counter() - started
    finally:
        os.sched_setaffinity(0, before)
        os.waitpid(child, 0)
        for fd in (to_child, from_parent, to_parent, from_child):
            os.close(fd)
    return elapsed / round_trips * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))
    pairs = {"one core": (cores[0], cores[0])}
    if len(cores) > 1:
        pairs["two cores"] = (cores[0], cores[1])
    load = os.getloadavg()[0]
    print(f"### Wake-ups: a pipe round trip between two processes (load average {load:.1f})\n")
    print("| placement | µs per round trip (median, range) |\n|---|---:|")
    for name, pair in pairs.items():
        figures = [round_trip_us(args.round_trips, pair) for _ in range(args.rounds)]
        print(f"| {name} | {statistics.median(figures):.1f} ({min(figures):.1f}{EN_DASH}{max(figures):.1f}) |")


if __name__ == "__main__":
    main()
