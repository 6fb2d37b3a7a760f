"""Kill -9 a process publishing routed events: every event it acknowledged is in the log and reaches its function.

A child runs a started EventBus on a SQLite file (so it routes its own publishes in their append's write,
`atomic.Route`) with 16 publishers, and prints each event's id once `publish` returned. The test kills it at
a random moment, opens the file, runs a bus over it until everything is consumed, and checks that every
acknowledged event is in the bus's log and has its invocation queued at least once, and that the router
group's position covers the whole log: whatever was routed in a publish's write, and whatever the kill left
to the consumer, is delivered. Three kills in a row on the same file (up to eight until one finds invocations
handed to the dispatcher in their route's write).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson
import pytest

from tests.crash_child import lines_until_killed
from triggerfish.app import App
from triggerfish.bus.bus import EventBus
from triggerfish.bus.rules import Rules
from triggerfish.names import bus_stream
from triggerfish.runtime import invocation_message
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.store import open_store

#: The child's consumer's claims: what it held when killed is claimed again this long after.
CLAIM_LEASE = 1.0
#: The leases of the invocations handed to the child's dispatcher: visible again this long after the kill.
HANDED_LEASE = 1.0

APP = """
from triggerfish.app import App

app = App("route-crash")


@app.on_event({"type": ["order.placed"]})
def ship(event):
    pass
"""

CHILD = """
import asyncio, sys
sys.path.insert(0, sys.argv[2])
from app import app
from triggerfish.bus.bus import EventBus
from triggerfish.bus.rules import Rules
import orjson
from triggerfish.events.cloudevent import Event
from triggerfish.runtime import invocation_message
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.store import open_store

def say(*parts):
    sys.stdout.write(" ".join(str(p) for p in parts) + "\\n")
    sys.stdout.flush()

async def main(path):
    store = await open_store("sqlite:///" + path)
    invoker = Invoker(InProcessRunner(app.functions), store)
    bus = EventBus(store, Rules(store, app.functions), invoker=invoker, claim_lease=CLAIM_LEASE)
    await bus.start()

    async def publisher(n):
        for i in range(10**9):
            events = [Event.create("order.placed", "shop", {"n": f"{n}-{i}-{k}"}) for k in range(1 + i % 3)]
            for event_id in await bus.publish("default", events):
                say("P", event_id)
            # Spaced, as requests arrive: the dispatcher keeps up and waits, so routes commit while it waits and are
            # leased to it in their own write. (Publishing flat out, the publishers outran it and it never waited:
            # it was handed invocations in a write only while a new bus's routes were all declined, before a Route
            # took a new group's first records.)
            await asyncio.sleep(0.002)

    async def dispatcher():
        # Takes the invocations as the platform's dispatcher does (a waiting receive, so a route's own write
        # leases them to it and hands them over in memory) and never runs them: the kill finds them leased.
        while True:
            # Batches as large as a burst: the receive empties the queue and waits again, and the routes that
            # commit while it waits are the ones leased to it in their own write.
            for m in await store.queues.receive("fn.ship", max_messages=500, visibility_timeout=LEASE, wait=1):
                event_id = orjson.loads(invocation_message.decode(m).event)["id"]
                say("H", event_id, int(m.first_received_at == m.sent_at))

    say("ready")
    await asyncio.gather(dispatcher(), *(publisher(n) for n in range(16)))

asyncio.run(main(sys.argv[1]))
""".replace("CLAIM_LEASE", repr(CLAIM_LEASE)).replace("LEASE", repr(HANDED_LEASE))


def run_and_kill(script: Path, db: Path, app_dir: Path) -> tuple[set[str], dict[str, bool]]:
    """The events the child acknowledged, and those whose invocation its dispatcher held (handed over with the
    route's write, or not) when it was killed."""
    lines = lines_until_killed([sys.executable, str(script), str(db), str(app_dir)], started_within=30)
    handed: dict[str, bool] = {}
    for line in lines:
        if line.startswith("H "):
            _, event_id, in_write = line.split()
            handed[event_id] = handed.get(event_id, False) or in_write == "1"
    return {line.split()[1] for line in lines if line.startswith("P ")}, handed


async def check(db: Path, published: set[str], app: App, delivered: set[str], handed: set[str]) -> set[str]:
    store = await open_store(f"sqlite:///{db}")
    try:
        assert len(published) > 50, "too little happened before the kill to prove anything"
        bus = EventBus(store, Rules(store, app.functions), invoker=Invoker(InProcessRunner(app.functions), store))
        await asyncio.sleep(max(CLAIM_LEASE, HANDED_LEASE) + 0.2)  # the dead process's claims and leases lapse
        await bus.drain()  # what the kill left to the consumer (unrouted, or a claim that lapsed) is routed now
        records = await store.log.read(bus_stream("default"), limit=10**6)
        logged = {orjson.loads(r.data)["id"] for r in records}
        assert published <= logged, "an acknowledged event is not in the log"
        assert await bus.checkpoint("default") == len(records), "the router group did not cover the whole log"
        queued = set(delivered)  # the earlier rounds' (taken off the queue then)
        again: set[str] = set()
        while batch := await store.queues.receive("fn.ship", max_messages=1000, visibility_timeout=60):
            again.update(str(orjson.loads(invocation_message.decode(m).event)["id"]) for m in batch)
            assert all(await store.queues.ack_many("fn.ship", [m.receipt for m in batch]))
        queued |= again
        assert logged <= queued, f"{len(logged - queued)} logged events have no invocation"
        # Handed to the dead dispatcher and never run nor acknowledged: received again once the lease ran out.
        assert handed <= again, f"{len(handed - again)} invocations handed over before the kill are gone"
        return queued
    finally:
        await store.close()


@pytest.mark.slow
def test_sigkill_while_publishing_routed_events_loses_no_delivery(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    db = tmp_path / "store.db"
    namespace: dict[str, object] = {}
    exec(compile(APP, "app.py", "exec"), namespace)
    app = namespace["app"]
    assert isinstance(app, App)
    delivered: set[str] = set()
    in_write = 0
    kills = 0
    # Three kills at least; more (up to eight) while none has yet found an invocation handed over in its route's
    # write: whether the dispatcher was waiting when a route committed is up to the scheduler on a loaded machine.
    while kills < 3 or (not in_write and kills < 8):
        published, handed = run_and_kill(script, db, app_dir)
        delivered = asyncio.run(check(db, published, app, delivered, set(handed)))
        in_write += sum(handed.values())
        kills += 1
    assert in_write, "no invocation was handed to the dispatcher with the write that routed it"
