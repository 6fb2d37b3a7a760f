"""An App that declares nothing: loading it fails instead of serving nothing."""

from __future__ import annotations

from triggerfish.app import App

app = App("empty")
