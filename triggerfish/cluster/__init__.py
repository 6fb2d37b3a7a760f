"""Many `triggerfish serve` nodes on one store: who is there (nodes.py) and what changed (changes.py)."""
