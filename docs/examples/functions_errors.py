"""Mistakes in a declaration stop the app at once, naming the function and the fix."""

from triggerfish import App, DeclarationError

app = App("shop")


def handler(event, context):
    return event


def refused(declare):
    try:
        declare()
    except DeclarationError as error:
        return str(error)
    raise AssertionError("the declaration was accepted")


message = refused(lambda: app.function(memory=256)(handler))
assert "function 'handler'" in message
assert "unknown setting 'memory' (did you mean 'memory_mb'?)" in message

message = refused(lambda: app.schedule("cron(0 3 * * * *)")(handler))
assert "exactly one of day-of-month and day-of-week must be '?'" in message

message = refused(lambda: app.on_queue("orders", batch_size=100)(handler))
assert "needs batch_window of at least 1 second" in message

app.http("GET", "/orders/{id}", name="get_order")(handler)
message = refused(lambda: app.http("ANY", "/orders/{order_id}", name="catch_all")(handler))
assert "'get_order'" in message
assert "'catch_all'" in message

message = refused(lambda: app.function(env={"AWS_LAMBDA_FUNCTION_NAME": "x"})(handler))
assert "set by the runtime" in message
