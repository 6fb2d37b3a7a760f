"""Kill -9 a process mid-burst: everything it was told is durable must be in the file, whole.

A child process runs 16 producers appending to the log and sending to a
queue, and a consumer that leases messages and acknowledges only some. Each
acknowledged write is printed (and flushed) as it is acknowledged. The test
kills the child with SIGKILL at a random moment, opens the same file itself,
and checks every printed write: present, byte for byte (each body carries a
checksum of itself), offsets contiguous, acknowledged messages gone, and
messages the dead consumer held come back once their lease ends. Three kills
in a row, on the same file.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from pathlib import Path

import pytest

from tests.crash_child import lines_until_killed
from triggerfish.store import open_store

LEASE = 1.0

CHILD = f"""
import asyncio, hashlib, os, random, sys, time
from triggerfish.store import QueueConfig, open_store

def body(label):
    payload = label.encode() + os.urandom(random.randrange(0, 4000))
    return hashlib.sha256(payload).digest()[:16] + payload

def say(*parts):
    sys.stdout.write(" ".join(str(p) for p in parts) + "\\n")
    sys.stdout.flush()

async def main(path):
    store = await open_store("sqlite:///" + path)
    await store.queues.configure("jobs", QueueConfig(visibility_timeout={LEASE}))

    async def producer(n):
        for i in range(10**9):
            data = body(f"p{{n}}-{{i}}")
            digest = hashlib.sha256(data).hexdigest()
            if i % 2:
                record = await store.log.append("events", data)
                say("L", record.offset, digest)
            else:
                sent = await store.queues.send("jobs", data)
                say("S", sent.message_id, digest)

    async def consumer():
        while True:
            for m in await store.queues.receive("jobs", max_messages=10, wait=0.05):
                if random.random() < 0.5:
                    say("T", m.message_id)  # about to ack: if killed now, the message may or may not be gone
                    if await store.queues.ack("jobs", m.receipt):
                        say("A", m.message_id)
                else:
                    say("R", m.message_id, m.lease_expires_at)

    say("ready")
    await asyncio.gather(consumer(), *(producer(n) for n in range(16)))

asyncio.run(main(sys.argv[1]))
"""


def verify_body(data: bytes) -> bool:
    return hashlib.sha256(data[16:]).digest()[:16] == data[:16]


def run_and_kill(script: Path, db: Path) -> list[list[str]]:
    lines = lines_until_killed([sys.executable, str(script), str(db)], started_within=20)
    return [line.split() for line in lines if line != "ready\n"]


async def check(db: Path, acks: list[list[str]], acked_before: set[str]) -> set[str]:
    store = await open_store(f"sqlite:///{db}")
    try:
        logged = {int(parts[1]): parts[2] for parts in acks if parts[0] == "L"}
        sent = {parts[1]: parts[2] for parts in acks if parts[0] == "S"}
        acked = {parts[1] for parts in acks if parts[0] == "A"} | acked_before
        trying = {parts[1] for parts in acks if parts[0] == "T"}
        held = [float(parts[2]) for parts in acks if parts[0] == "R"]
        assert len(logged) > 50, "too little happened before the kill to prove anything"
        assert len(sent) > 50, "too little happened before the kill to prove anything"

        records = await store.log.read("events", limit=10**6)
        assert [r.offset for r in records] == list(range(1, len(records) + 1)), "offsets are not contiguous"
        assert await store.log.last_offset("events") == len(records)
        assert all(verify_body(r.data) for r in records), "a log record is half-written"
        stored = {r.offset: hashlib.sha256(r.data).hexdigest() for r in records}
        for offset, digest in logged.items():
            assert stored.get(offset) == digest, f"acknowledged log record {offset} is lost or changed"

        # Leases of the dead consumer end; then every unacknowledged message must come back.
        if held:
            await asyncio.sleep(max(0.0, max(held) - time.time()) + 0.1)
        received: dict[str, bytes] = {}
        while batch := await store.queues.receive("jobs", max_messages=1000, visibility_timeout=60):
            received.update((m.message_id, m.body) for m in batch)
            assert all(await store.queues.ack_many("jobs", [m.receipt for m in batch]))
        assert all(verify_body(body) for body in received.values()), "a message is half-written"
        assert not (acked & received.keys()), "an acknowledged message came back"
        for message_id, digest in sent.items():
            if message_id not in acked | trying:
                assert message_id in received, f"acknowledged send {message_id} is lost"
                assert hashlib.sha256(received[message_id]).hexdigest() == digest
        return acked | received.keys()
    finally:
        await store.close()


@pytest.mark.slow
def test_sigkill_mid_burst_loses_nothing_acknowledged(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    db = tmp_path / "store.db"
    done: set[str] = set()
    for _ in range(3):
        acks = run_and_kill(script, db)
        done = asyncio.run(check(db, acks, done))
