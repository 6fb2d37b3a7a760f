"""Invoke a function directly, check its result, its error and its invocation record."""

import asyncio

import pytest

from triggerfish import App, HandlerError
from triggerfish.testing import TestPlatform

app = App("shop")


@app.function()
def quote(event, context):
    if event["items"] < 1:
        raise ValueError("an order needs at least one item")
    return {"total": event["items"] * 10}


async def main() -> None:
    async with TestPlatform(app) as platform:
        assert await platform.invoke("quote", {"items": 2}) == {"total": 20}

        with pytest.raises(HandlerError) as failure:
            await platform.invoke("quote", {"items": 0})
        assert failure.value.error_type == "ValueError"
        assert failure.value.error["errorMessage"] == "an order needs at least one item"

        records = await platform.invocations(function="quote")
        assert [r.status for r in records] == ["succeeded", "failed"]


asyncio.run(main())
