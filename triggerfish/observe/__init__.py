"""Seeing the platform run: Prometheus metrics, usage and cost, and what `triggerfish dev` prints per invocation."""
