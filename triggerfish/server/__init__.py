"""The platform server: one process running every trigger of an app over a store (`triggerfish dev`)."""
