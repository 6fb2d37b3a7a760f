"""What the isolation tests share: skipping without bubblewrap (failing under CI=true) or without root."""

from __future__ import annotations

import os
import shutil

import pytest


def require_bwrap() -> None:
    """Skip, with the reason, when bubblewrap is not installed; fail under CI=true, where it must be."""
    if shutil.which("bwrap") is not None:
        return
    reason = "bubblewrap (bwrap) is not installed; apt-get install bubblewrap"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(reason)


def require_root() -> None:
    """Skip when not root: a uid per app needs root (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: only root can run each app as a uid of its own")


@pytest.fixture
def boxed() -> None:
    """Tests that make boxes need bubblewrap."""
    require_bwrap()


@pytest.fixture
def root_boxed() -> None:
    """Tests that give apps uids of their own need bubblewrap and root."""
    require_bwrap()
    require_root()
