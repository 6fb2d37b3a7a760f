"""The event bus: routing published events to the functions whose rules match them."""

from __future__ import annotations

from triggerfish.bus.router import Router, Target

__all__ = ["Router", "Target"]
