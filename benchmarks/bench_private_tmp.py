"""The cold-start cost of a worker's private /tmp: what a forked worker spends making it, before user code.

Each sample forks a child (as the zygote forks a worker) that does, and times: nothing (the baseline);
the work as it was (the import path's real paths worked out in the worker, then `private_tmp.enter`);
the work as it is (the real paths remembered by the zygote before the fork, then `enter`). The child
reports its own time through a pipe. Needs root or unprivileged user namespaces; otherwise the section
says so.

    .venv/bin/python -m benchmarks.run private_tmp
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

from benchmarks.measure import load_average
from triggerfish.runtime import private_tmp

SAMPLES = 200


def _in_child(work: Callable[[], None]) -> float:
    """Milliseconds `work` takes in a freshly forked child."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        began = time.perf_counter()
        try:
            work()
            os.write(write, repr((time.perf_counter() - began) * 1000).encode())
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    if not answer:
        raise OSError("the child could not make a private /tmp")
    return float(answer)


def main() -> str:
    search_path = [os.getcwd(), *sys.path]

    def as_it_was() -> None:
        keep = [os.path.realpath(os.getcwd()), *(os.path.realpath(entry) for entry in search_path if entry)]
        private_tmp.enter(512, keep)

    def as_it_is() -> None:
        private_tmp.enter(512, private_tmp.paths_to_keep(os.getcwd(), search_path))

    private_tmp.remember(search_path)  # what the zygote does before it forks
    try:
        _in_child(as_it_is)
    except OSError:
        return "## Private /tmp\n\nNot measured: no mount namespaces here (not root, no user namespaces).\n"
    kinds: dict[str, Callable[[], None]] = {"nothing": lambda: None, "as it was": as_it_was, "as it is": as_it_is}
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(SAMPLES):
        for name, work in kinds.items():  # in turns, so load on the shared machine falls on all alike
            times[name].append(_in_child(work))
    rows = [
        f"| {name} | {statistics.median(found):.3f} ms | {statistics.quantiles(found, n=10)[-1]:.3f} ms |"
        for name, found in times.items()
    ]
    return "\n".join(
        [
            "## Private /tmp: what a worker spends on it before user code",
            "",
            f"{SAMPLES} forked children each, in turns; load average {load_average():.2f}.",
            "",
            "| in the child | p50 | p90 |",
            "|---|---|---|",
            *rows,
            "",
        ]
    )
