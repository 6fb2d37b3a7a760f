"""An app with a typo in a setting: loading it names the function and the closest valid setting."""

from __future__ import annotations

from typing import Any

from triggerfish.app import App

app = App("typo")


@app.function(memory=256)
def create_order(event: Any) -> Any:
    return event
