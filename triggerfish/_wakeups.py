"""Tasks the platform's event loop wakes, kept from taking the loop's core when it wakes them.

    no_wakeup_preemption()   # in a worker process after its fork, and first thing in the store's threads

The event loop hands work on by waking another task: a worker process by writing its next request to the
worker's socket, the SQLite store's writer (and reader) thread by a notify. Linux lets a task that wakes
after a sleep preempt the task that woke it when no core is free for it, and on a machine with two cores
one seldom is: the loop, which sets the pace of the async path, then stops in the middle of its `sendto` or
`notify` while the woken task runs, and a woken store thread finds the GIL held by the stopped loop and only
sleeps again. Counted in the async drain (`python -m benchmarks.drain`): the loop was preempted 0.2 to 0.6
times per invocation, and a `send` to a worker took 170 µs of the loop's wall time.

A task under the SCHED_BATCH policy never preempts on wake-up (its preemption is the scheduler tick's), and
is otherwise scheduled as any other: the same nice level, the same share of the CPU, at once on an idle
core. So the woken worker or thread runs when the loop next sleeps in `epoll_wait` (it does within an
invocation or two) or its time slice ends, and the loop finishes its turn first. SCHED_BATCH needs no
privilege, a thread's policy is its own (the event loop's thread keeps the normal one), and a process's
threads and children inherit it (a handler may set another).
"""

from __future__ import annotations

import contextlib
import os


def no_wakeup_preemption() -> None:
    """Put the calling thread under SCHED_BATCH (see the module docstring); nothing where the system has no such
    policy or refuses it."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:  # not Linux
        return
    with contextlib.suppress(OSError):  # a sandbox may refuse it: the thread then runs as before
        os.sched_setscheduler(0, policy, os.sched_param(0))
