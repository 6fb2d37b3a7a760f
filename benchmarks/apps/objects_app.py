"""The app `benchmarks/bench_objects.py` serves: no `@app.on_object` function, so the figures are the
object store's own (an upload with an `@app.on_object` trigger also queues its invocation, in the same commit)."""

from __future__ import annotations

from triggerfish import App

app = App("bench-objects")


@app.http("GET", "/ping")
def ping(event: object, context: object) -> str:
    return "pong"  # an app declares at least one function
