"""Worker processes kept from taking the platform's core when its event loop wakes them.

    no_wakeup_preemption()   # in a worker, right after its fork

The event loop hands a worker its next invocation by writing the request to the worker's socket, and on the
async path a worker that ran a no-op in less time than the loop took to send it sleeps between requests:
each `sendto` wakes it. Linux lets a task that wakes after a sleep preempt the task that woke it when no core
is free for it, and on a machine with two cores one seldom is. The event loop, which sets the pace of the async
path, then stops in the middle of its `sendto` while the worker starts; in the async drain (`python -m
benchmarks.drain`) it was preempted 0.2 to 0.6 times per invocation, and a `send` to a worker took 170 µs of
its wall time.

A task under the SCHED_BATCH policy never preempts on wake-up (its preemption is the scheduler tick's), and is
otherwise scheduled as any other: the same nice level, the same share of the CPU, at once on an idle core.
A woken worker thus runs when the loop next sleeps in `epoll_wait` or its time slice ends, and the loop
finishes its turn first.
SCHED_BATCH needs no privilege; a process's threads and children inherit it (a handler may set another).

Not the SQLite store's writer thread, though it is woken as often: a request to queue invocations waits for
the writer's commit, and a writer that may not preempt starts its commit up to a scheduler tick (4 ms on this
host) later when the machine is busy, which made the enqueue slower end to end (docs/benchmarks.md, async12).
"""

from __future__ import annotations

import contextlib
import os


def no_wakeup_preemption() -> None:
    """Put the calling process (its calling thread, and what it starts from now on) under SCHED_BATCH (see the
    module docstring); nothing where the system has no such policy or refuses it."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:  # not Linux
        return
    with contextlib.suppress(OSError):  # a sandbox may refuse it: the worker then runs as before
        os.sched_setscheduler(0, policy, os.sched_param(0))
