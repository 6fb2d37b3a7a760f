"""Run-time subscriptions: a queue subscribed with a filter, kept in the store across a restart."""

import asyncio
import json
import tempfile

from triggerfish.store import open_store
from triggerfish.triggers.topics import Topics


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/store.db"
        async with await open_store(url) as store:
            topics = Topics(store, {})
            refunds = await topics.subscribe("orders", "queue", "refund-audit", filter={"kind": ["refund"]})
            await topics.subscribe("orders", "queue", "order-log", raw=True)
            assert refunds.arn.startswith("arn:aws:sns:local:000000000000:orders:")
            await topics.stop()

        # A restart: the subscriptions are read back from the store.
        async with await open_store(url) as store:
            topics = Topics(store, {})
            assert [s.endpoint for s in await topics.subscriptions("orders")] == ["refund-audit", "order-log"]
            refund = await topics.publish("orders", '{"order": 7}', attributes={"kind": "refund"})
            await topics.publish("orders", '{"order": 8}', attributes={"kind": "sale"})
            await topics.drain()  # what the background consumer does after `await topics.start()`
            await topics.stop()

            [audited] = await store.queues.receive("refund-audit")
            notification = json.loads(audited.body)  # the SNS notification JSON
            assert (notification["MessageId"], notification["Message"]) == (refund, '{"order": 7}')
            assert notification["MessageAttributes"]["kind"] == {"Type": "String", "Value": "refund"}

            logged = await store.queues.receive("order-log", max_messages=10)
            assert [m.body for m in logged] == [b'{"order": 7}', b'{"order": 8}']  # raw: the message itself
            assert logged[0].attributes["kind"] == "refund"


asyncio.run(main())
