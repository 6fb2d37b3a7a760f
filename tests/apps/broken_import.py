"""An app whose import fails: the loader must show this traceback."""

from __future__ import annotations

from triggerfish.app import App

app = App("broken")


def helper() -> dict[str, int]:
    return {}


SETTINGS = helper()["missing_key"]
