"""Change streams: records of what changed in tables, and the triggers that run functions on them."""
