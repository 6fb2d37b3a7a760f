"""The forms a handler may take: sync or async, with or without the context."""

import asyncio
import functools
import time

from triggerfish.runtime.context import Context
from triggerfish.runtime.handler import run_handler


def with_context(event, context):
    return {"id": event["id"], "request": context.aws_request_id}


def event_only(event):
    return event["id"]


async def async_handler(event, context):
    await asyncio.sleep(0.01)
    return event["id"]


def configured(table, event, context):
    return f"{table}/{event['id']}"


context = Context(request_id="r-1", function_name="orders", deadline=time.time() + 3)
event = {"id": "o-1"}

assert run_handler(with_context, event, context).result_json == b'{"id":"o-1","request":"r-1"}'
assert run_handler(event_only, event, context).result_json == b'"o-1"'
assert run_handler(async_handler, event, context).result_json == b'"o-1"'
assert run_handler(functools.partial(configured, "orders"), event, context).result_json == b'"orders/o-1"'

# A worker keeps one event loop for its life, so clients cached in globals stay usable.
loop = asyncio.new_event_loop()
assert run_handler(async_handler, event, context, loop=loop).ok
assert not loop.is_closed()
loop.close()
