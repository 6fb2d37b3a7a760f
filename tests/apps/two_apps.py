"""Two Apps in one module: the loader wants `:name` to choose."""

from __future__ import annotations

from typing import Any

from triggerfish.app import App

public = App("public")
admin = App("admin")


@public.function()
def hello(event: Any) -> Any:
    return "hello"


@admin.function()
def purge(event: Any) -> Any:
    return "purged"
