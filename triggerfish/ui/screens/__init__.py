"""The dashboard's screens, one module per area; each handler reads and acts through the control API (api.py)."""
