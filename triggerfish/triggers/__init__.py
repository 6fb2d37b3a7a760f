"""Triggers that turn store state into invocations: queues, topics and schedules."""
