"""Atomic writes: a consumer's deliveries, records and checkpoint in one transaction, or none of them."""

import asyncio

from triggerfish.errors import AtomicConflictError
from triggerfish.store import ABSENT, OutgoingMessage, open_store
from triggerfish.store.atomic import Append, Commit, Put, Send


async def main() -> None:
    async with await open_store("sqlite:///store.db") as store:
        assert store.atomic_writes  # one engine: all or nothing
        await store.log.append_many("bus.orders", [b'{"id": 1}', b'{"id": 2}'])
        claim = await store.log.claim("bus.orders", "rules")
        assert claim is not None

        # Everything the batch causes, and the group moving past it, in one commit.
        sent, _record, committed = await store.atomic(
            [
                Send("fn.ship", [OutgoingMessage(r.data) for r in claim.records]),
                Put("orders", "last-seen", claim.records[-1].data),
                Commit(claim),
            ]
        )
        assert len(sent) == 2
        assert committed
        assert await store.log.position("bus.orders", "rules") == 2

        # A condition that fails takes everything back, and says which operation failed.
        try:
            await store.atomic([Append("audit", [b"shipped"]), Put("orders", "last-seen", b"?", if_version=ABSENT)])
        except AtomicConflictError as exc:
            failed = exc.index
        assert failed == 1
        assert await store.log.read("audit") == []


asyncio.run(main())
