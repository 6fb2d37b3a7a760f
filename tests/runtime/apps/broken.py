"""An app whose import fails, for the load-error tests."""

from triggerfish.app import App

app = App("broken")
raise RuntimeError("the database URL is not set")
