"""A workflow checkpoint's store work alone, to count its instructions under callgrind: the checks of its atomic
write (`check_ops`), or the SQLite writer's part of it (`_write_atomic`: its record by compare-and-set and the
span of the step it ends), COUNT times.

    valgrind --tool=callgrind --callgrind-out-file=/tmp/0.out python -m benchmarks.checkpoint_costs checks 0
    valgrind --tool=callgrind --callgrind-out-file=/tmp/n.out python -m benchmarks.checkpoint_costs checks 2000

The difference of the two totals over 2,000 is one checkpoint's: start-up cancels out, and nothing here waits on
the clock, so the count does not move with the machine's load (the whole platform under callgrind does: its timed
background work grows with the fifty-fold wall time). `writes` instead of `checks` counts the writer's part, in
transactions of `--batch` checkpoints each (10 by default: about what one writer transaction holds under the workflows
benchmark; 1 is a quiet store's, each checkpoint committed alone).
It also runs on a tree from before the version counter's `_sqlite_versions` (PYTHONPATH=<that tree>), so that
one script counts both sides of a comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from triggerfish.store import ABSENT, open_store
from triggerfish.store._sqlite_schema import connect
from triggerfish.store.atomic import Op, Put, check_ops
from triggerfish.store.sqlite import _write_atomic

#: About the size of a three-step workflow's record, and of one step's span.
RECORD = b'{"ops": "' + b"x" * 1500 + b'"}'
SPAN = b'{"attributes": "' + b"x" * 400 + b'"}'
TRACE = "t/0123456789abcdef0123456789abcdef/"


async def checks(count: int, directory: Path) -> None:
    store = await open_store(f"sqlite:///{directory / 'store.db'}")
    ops = [
        Put("triggerfish.workflows", "r/abc123", RECORD, None, 5),
        Put("triggerfish.traces", f"{TRACE}0123456789abcdef", SPAN, ttl=604800.0),
    ]
    for _ in range(count):
        check_ops(store, ops)
    await store.close()


def _transactions(
    connection: sqlite3.Connection,
) -> tuple[Callable[[list[Op], float], list[Any]], Callable[[], None], Callable[[], None]]:
    """This tree's `_write_atomic`, and how its writer begins and commits a transaction."""
    versions: Any = None
    with contextlib.suppress(ImportError):  # a tree from before the counter was kept per transaction has none
        from triggerfish.store._sqlite_versions import VersionCounter

        versions = VersionCounter()

    def write(ops: list[Op], now: float) -> list[Any]:
        if versions is None:
            return _write_atomic(connection, ops, now, 1 << 20)  # type: ignore[call-arg, arg-type]
        return _write_atomic(connection, versions, ops, now, 1 << 20)

    def begin() -> None:
        connection.execute("BEGIN")
        if versions is not None:
            versions.begin()

    def commit() -> None:
        if versions is not None:
            versions.before_commit(connection)
        connection.execute("COMMIT")

    return write, begin, commit


def writes(count: int, directory: Path, batch: int) -> None:
    connection = connect(str(directory / "store.db"), migrate=True)
    connection.execute("PRAGMA synchronous = OFF")  # the statements are counted here, not the disk
    write, begin, commit = _transactions(connection)
    now = time.time()
    begin()
    [first] = write([Put("triggerfish.workflows", "r/abc123", RECORD, None, ABSENT)], now)
    commit()
    version = first.version
    for index in range(count):
        if index % batch == 0:
            begin()
        ops: list[Op] = [
            Put("triggerfish.workflows", "r/abc123", RECORD, None, version),
            Put("triggerfish.traces", f"{TRACE}{index:016x}", SPAN, 604800.0),
        ]
        version = write(ops, now)[0].version
        if index % batch == batch - 1 or index == count - 1:
            commit()
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=("checks", "writes"))
    parser.add_argument("count", type=int)
    parser.add_argument("--batch", type=int, default=10, help="checkpoints per writer transaction (writes)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        if options.part == "checks":
            asyncio.run(checks(options.count, Path(directory)))
        else:
            writes(options.count, Path(directory), options.batch)


if __name__ == "__main__":
    main()
