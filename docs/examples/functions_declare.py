"""Declare functions with App's decorators; read back what was declared."""

from triggerfish import App

app = App("shop")


@app.http("POST", "/orders", memory_mb=256, timeout=10)
@app.on_queue("orders", batch_size=10)
def create_order(event, context):
    return {"statusCode": 201}


@app.on_event({"type": ["order.created"]}, on_failure="queue:audit-failed")
def audit(event):
    return event["data"]


@app.schedule("cron(0 3 * * ? *)", tz="Europe/Paris", retries=0)
def nightly_report(event, context):
    return "done"


@app.function(env={"TABLE": "orders"})
def lookup(event, context):
    return {"id": event["id"]}


specs = app.functions
assert list(specs) == ["create_order", "audit", "nightly_report", "lookup"]

# Stacked decorators: one function, two triggers, in the order they are written.
assert [t.kind for t in specs["create_order"].triggers] == ["http", "queue"]
assert specs["create_order"].settings.memory_mb == 256
assert str(specs["audit"].settings.on_failure) == "queue:audit-failed"
assert specs["lookup"].triggers == ()  # invoked directly or asynchronously only

# Decorators return your function unchanged: call it in a plain unit test.
assert create_order({}, None) == {"statusCode": 201}
