"""A real browser for the dashboard's tests: Debian's Chromium (the `chromium` package) driven by Playwright.

Playwright cannot download its own browser builds here, so the tests launch
the system's Chromium by path. Without it the tests skip, saying how to
install it, except under CI (`CI=true`), where .ci/run installs it and a
missing browser fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("TRIGGERFISH_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Screenshots the tests take, for a person to look at (kept by CI as artefacts; gitignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


def require_chromium() -> None:
    missing = None
    if not CHROMIUM.exists():
        missing = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ModuleNotFoundError:
            missing = "Playwright is not installed (pip install 'triggerfish[test]')"
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{missing}; CI=true requires it")
    pytest.skip(missing)


def screenshot_path(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")
