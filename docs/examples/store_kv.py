"""Key-value records: compare-and-set by version, and expiry, make a lock that frees itself."""

import asyncio

from triggerfish.store import ABSENT, open_store


async def main() -> None:
    async with await open_store("sqlite:///store.db") as store:
        # Create-only: of two workers racing for the lock, exactly one wins.
        first, second = await asyncio.gather(
            store.kv.put("locks", "nightly-report", b"worker-1", ttl=0.2, if_version=ABSENT),
            store.kv.put("locks", "nightly-report", b"worker-2", ttl=0.2, if_version=ABSENT),
        )
        winner = first or second
        assert winner is not None
        assert (first is None) != (second is None)

        # The holder renews by version; a stale version is refused.
        renewed = await store.kv.put("locks", "nightly-report", winner.value, ttl=0.2, if_version=winner.version)
        assert renewed is not None
        assert await store.kv.put("locks", "nightly-report", b"late", if_version=winner.version) is None

        # A holder that dies stops renewing: the record expires and counts as absent everywhere.
        await asyncio.sleep(0.3)
        assert await store.kv.get("locks", "nightly-report") is None
        taken = await store.kv.put("locks", "nightly-report", b"worker-3", if_version=ABSENT)
        assert taken is not None
        assert taken.version > renewed.version  # versions are never reused


asyncio.run(main())
