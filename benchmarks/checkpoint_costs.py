"""A workflow checkpoint's store work alone, to count its instructions under callgrind: the checks of its atomic
write (`check_ops`), or the SQLite writer's part of it (`_write_atomic`: its record by compare-and-set and the
span of the step it ends), COUNT times.

    valgrind --tool=callgrind --callgrind-out-file=/tmp/0.out python -m benchmarks.checkpoint_costs checks 0
    valgrind --tool=callgrind --callgrind-out-file=/tmp/n.out python -m benchmarks.checkpoint_costs checks 2000

The difference of the two totals over 2,000 is one checkpoint's: start-up cancels out, and nothing here waits on
the clock, so the count does not move with the machine's load (the whole platform under callgrind does: its timed
background work grows with the fifty-fold wall time). `writes` instead of `checks` counts the writer's part.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

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


def writes(count: int, directory: Path) -> None:
    connection = connect(str(directory / "store.db"), migrate=True)
    connection.execute("PRAGMA synchronous = OFF")  # the statements are counted here, not the disk
    now = time.time()
    [first] = _write_atomic(connection, [Put("triggerfish.workflows", "r/abc123", RECORD, None, ABSENT)], now, 1 << 20)
    version = first.version
    connection.execute("BEGIN")
    for index in range(count):
        ops: list[Op] = [
            Put("triggerfish.workflows", "r/abc123", RECORD, None, version),
            Put("triggerfish.traces", f"{TRACE}{index:016x}", SPAN, 604800.0),
        ]
        version = _write_atomic(connection, ops, now, 1 << 20)[0].version
    connection.execute("COMMIT")
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=("checks", "writes"))
    parser.add_argument("count", type=int)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        if options.part == "checks":
            asyncio.run(checks(options.count, Path(directory)))
        else:
            writes(options.count, Path(directory))


if __name__ == "__main__":
    main()
