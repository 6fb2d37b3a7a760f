"""A module with handlers but no App: the loader says so and lists what it found."""

from __future__ import annotations

from typing import Any


def handler(event: Any, context: Any) -> Any:
    return event


TABLE = "orders"
