"""FIFO queues: messages of one group come in send order, one at a time; other groups are not held up."""

import asyncio

from triggerfish.store import OutgoingMessage, QueueConfig, open_store


async def main() -> None:
    async with await open_store("memory://") as store:
        await store.queues.configure("payments", QueueConfig(fifo=True))
        await store.queues.send_many(
            "payments",
            [
                OutgoingMessage(b"open account 7", group="account-7"),
                OutgoingMessage(b"deposit 7", group="account-7"),
                OutgoingMessage(b"open account 9", group="account-9"),
            ],
        )
        batch = await store.queues.receive("payments", max_messages=10)
        assert [m.body for m in batch] == [b"open account 7", b"open account 9"]

        # "deposit 7" waits until "open account 7" is acknowledged.
        assert await store.queues.receive("payments", max_messages=10) == []
        await store.queues.ack("payments", batch[0].receipt)
        [deposit] = await store.queues.receive("payments", max_messages=10)
        assert deposit.body == b"deposit 7"


asyncio.run(main())
