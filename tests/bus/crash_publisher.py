"""Run by test_bus.py as a child process: runs the bus and publishes a burst, printing each acknowledged id.

    python -m tests.bus.crash_publisher STORE_PATH

The test SIGKILLs it in the middle of the burst.
"""

from __future__ import annotations

import asyncio
import sys

from triggerfish.bus.bus import EventBus
from triggerfish.bus.rules import Rules
from triggerfish.events.cloudevent import Event
from triggerfish.store import open_store

RULE = {
    "id": "count",
    "pattern": {"source": ["crash"]},
    "targets": [{"id": "a", "kind": "queue", "name": "out-a"}, {"id": "b", "kind": "queue", "name": "out-b"}],
}


async def main(path: str) -> None:
    store = await open_store(f"sqlite:///{path}")
    rules = Rules(store)
    await rules.put(RULE)
    bus = EventBus(store, rules, lease=1.0)
    await bus.start()
    number = 0
    while True:
        batch = [Event.create("tick", "crash", {"n": number + i}) for i in range(10)]
        number += 10
        ids = await bus.publish("default", batch)
        sys.stdout.write("".join(f"{event_id}\n" for event_id in ids))
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
