"""A failing asynchronous invocation is retried, then lands in the dead letters."""

import asyncio

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("billing")


@app.function(retries=2)
def charge(event, context):
    raise ConnectionError(f"payment provider down (attempt {context.attempt})")


async def main() -> None:
    async with TestPlatform(app) as platform:  # retries wait no backoff in tests
        request_id = await platform.invoke_async("charge", {"order": 7})
        await platform.drain()

        attempts = await platform.invocations(function="charge")
        assert [r.attempt for r in attempts] == [1, 2, 3]
        assert {r.status for r in attempts} == {"failed"}

        (dead,) = await platform.dead_letters("charge")
        assert dead["requestContext"]["requestId"] == request_id
        assert dead["requestContext"]["condition"] == "RetriesExhausted"
        assert dead["requestPayload"] == {"order": 7}


asyncio.run(main())
