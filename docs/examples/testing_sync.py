"""Tests that are not async use SyncTestPlatform: the same methods, each blocking."""

from triggerfish import App
from triggerfish.testing import SyncTestPlatform

app = App("greeter")


@app.function()
def greet(event, context):
    context.publish("greeted", {"name": event["name"]})
    return f"hello, {event['name']}"


def test_greet() -> None:
    with SyncTestPlatform(app) as platform:
        assert platform.invoke("greet", {"name": "Ada"}) == "hello, Ada"
        assert [e.data for e in platform.published()] == [{"name": "Ada"}]


test_greet()
