"""Bad input is refused before anything is stored, with what is wrong and how to fix it."""

import asyncio

from triggerfish.errors import InvalidInputError, InvalidPatternError
from triggerfish.store import open_store
from triggerfish.triggers.topics import Topics


async def refused(call) -> InvalidInputError:
    try:
        await call
    except InvalidInputError as exc:  # InvalidPatternError is one too
        return exc
    raise AssertionError("accepted")


async def main() -> None:
    async with await open_store("memory://") as store:
        topics = Topics(store, {})
        assert "invalid topic name 'new alerts'" in str(await refused(topics.publish("new alerts", "m")))
        assert "send JSON as text" in str(await refused(topics.publish("alerts", {"level": "high"})))
        bad_value = await refused(topics.publish("alerts", "m", attributes={"retries": 3}))
        assert "attribute 'retries': the value must be a str, not int" in str(bad_value)
        assert "over the limit of 262144 bytes" in str(await refused(topics.publish("alerts", "x" * 300_000)))

        bad_filter = await refused(topics.subscribe("alerts", "queue", "q", filter={"level": "high"}))
        assert isinstance(bad_filter, InvalidPatternError)
        assert (bad_filter.path, "must be in an array" in bad_filter.reason) == ("level", True)
        assert await topics.subscriptions("alerts") == []  # nothing was stored


asyncio.run(main())
