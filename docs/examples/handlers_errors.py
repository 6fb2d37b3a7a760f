"""Failures come back in Lambda's error shape; Retry and NonRetryable steer what happens next."""

import datetime
import sys
import time

from triggerfish import NonRetryable, Retry
from triggerfish.runtime.context import Context
from triggerfish.runtime.handler import run_handler

context = Context(request_id="r-7", function_name="orders", deadline=time.time() + 3)


class OrderNotFound(Exception):
    pass


def lookup(event, context):
    raise OrderNotFound(f"no order {event['id']}")


failed = run_handler(lookup, {"id": "o-404"}, context)
assert not failed.ok
assert failed.retryable
assert failed.error["errorType"] == "OrderNotFound"
assert failed.error["errorMessage"] == "no order o-404"
assert failed.error["requestId"] == "r-7"
# One string per frame, starting in the handler, as Lambda's Python runtime writes them.
assert failed.error["stackTrace"][0].endswith("in lookup\n    raise OrderNotFound(f\"no order {event['id']}\")\n")


def busy(event):
    raise Retry("the payment service is busy", delay=30)


retry = run_handler(busy, {}, context)
assert (retry.ok, retry.retryable, retry.retry_delay) == (False, True, 30)


def invalid(event):
    raise NonRetryable("the order has no items")


stop = run_handler(invalid, {}, context)
assert (stop.ok, stop.retryable) == (False, False)


def returns_a_datetime(event):
    return {"at": datetime.datetime.now()}


marshal = run_handler(returns_a_datetime, {}, context)
assert marshal.error["errorType"] == "Runtime.MarshalError"
assert marshal.error["errorMessage"] == "Unable to marshal response: Object of type datetime is not JSON serializable"


def exits(event):
    sys.exit(1)


exited = run_handler(exits, {}, context)  # the caller lives on and gets an error
assert exited.error["errorType"] == "SystemExit"
