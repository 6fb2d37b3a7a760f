"""Queues on the durable SQLite store: leases, acknowledgements, redelivery and dead letters."""

import asyncio

from triggerfish.store import QueueConfig, open_store


async def main() -> None:
    async with await open_store("sqlite:///store.db") as store:
        await store.queues.configure(
            "emails", QueueConfig(visibility_timeout=0.2, max_receives=2, dead_letter="emails.dlq")
        )
        await store.queues.send("emails", b"welcome alice", attributes={"template": "welcome"})
        await store.queues.send("emails", b"welcome bob", dedup_id="signup-bob")
        repeat = await store.queues.send("emails", b"welcome bob", dedup_id="signup-bob")
        assert repeat.duplicate  # the same dedup id within 5 minutes stores nothing

        # A receive leases messages: nobody else gets them until the lease ends.
        alice, bob = await store.queues.receive("emails", max_messages=10)
        assert await store.queues.receive("emails") == []
        assert await store.queues.ack("emails", alice.receipt)  # done with alice: deleted

        # Bob's handler crashed and never acknowledged: after the lease he comes back.
        await asyncio.sleep(0.3)
        [again] = await store.queues.receive("emails")
        assert (again.body, again.receive_count) == (b"welcome bob", 2)
        assert not await store.queues.ack("emails", bob.receipt)  # the old receipt is stale

        # Received max_receives times and still failing: the next receive moves it aside.
        await asyncio.sleep(0.3)
        assert await store.queues.receive("emails") == []
        [dead] = await store.queues.receive("emails.dlq")
        assert dead.body == b"welcome bob"

    # Everything acknowledged as sent is in the file, even after a crash.
    async with await open_store("sqlite:///store.db") as store:
        assert (await store.queues.stats("emails.dlq")).depth == 1


asyncio.run(main())
