"""`triggerfish events ...`: work with events and patterns."""

from __future__ import annotations

import click


@click.group()
def events() -> None:
    """Work with events and event patterns."""
