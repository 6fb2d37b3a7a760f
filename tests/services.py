"""Reaching the optional services (PostgreSQL, Redis, NATS, ...) that some tests need.

A test that needs a service skips, with the reason, when the service cannot be
reached, except under CI (`CI=true`), where the service must be there and an
unreachable one fails the test.
"""

from __future__ import annotations

import os
import socket

import pytest


def require_service(name: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        reason = f"{name} is not reachable at {host}:{port} ({exc})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(reason)
